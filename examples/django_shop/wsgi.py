# examples/django_shop/wsgi.py
"""gunicorn django_shop.wsgi, or waitress-serve django_shop.wsgi:application"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_shop.settings")
# The Notifier's store opens on the first notification and closes at interpreter exit.
application = get_wsgi_application()
