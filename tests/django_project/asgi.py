"""A minimal Django project for tests/test_django.py, also served by uvicorn and waitress.

`application` is the documented deployment (paynotify's paths answered before Django reads a body);
`django_view` serves them through Django's ASGI handler and the view, to test the view under ASGI.
"""

import os

from django.core.asgi import get_asgi_application

from paynotify.contrib.django import paynotify_asgi, with_lifespan

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project.settings")
django_application = get_asgi_application()
# Imported once Django is set up, as a project's payments module that uses models must be.
from django_project.payments import notifier  # noqa: E402

application = paynotify_asgi(django_application, notifier, prefix="/payments/")
django_view = with_lifespan(django_application, notifier)
