# examples/django_shop/asgi.py
"""uvicorn django_shop.asgi:application"""

import os

from django.core.asgi import get_asgi_application

from paynotify.contrib.django import paynotify_asgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_shop.settings")
django_application = get_asgi_application()

from django_shop.payments import notifier  # noqa: E402  (after Django is set up, as models need)

# /payments/ (where urls.py includes paynotify_urls) is answered before Django reads a body: the
# body limit, the body deadline and the early 413 hold. The rest is Django's. At shutdown the
# Notifier's store is closed (Django alone ignores the ASGI lifespan).
application = paynotify_asgi(django_application, notifier, prefix="/payments/")
