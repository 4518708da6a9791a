"""Adapters for frameworks that need their own import (Django); each is an optional extra."""
