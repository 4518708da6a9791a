"""A minimal Django project for tests/test_django.py, also served by uvicorn and waitress."""
