# examples/django_shop/asgi.py
"""uvicorn django_shop.asgi:application"""

import os

from django.core.asgi import get_asgi_application

from paynotify.contrib.django import with_lifespan

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_shop.settings")
django_application = get_asgi_application()

from django_shop.payments import notifier  # noqa: E402  (after Django is set up, as models need)

# Closes the Notifier's store when the server stops (Django alone ignores the ASGI lifespan).
application = with_lifespan(django_application, notifier)
