import os

from django.core.asgi import get_asgi_application

from paynotify.contrib.django import with_lifespan

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project.settings")
django_application = get_asgi_application()
# Imported once Django is set up, as a project's payments module that uses models must be.
from django_project.payments import notifier  # noqa: E402

application = with_lifespan(django_application, notifier)
