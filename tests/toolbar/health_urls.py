"""django-health-check's view with its cache check on the ``default`` alias."""

from django.urls import path
from health_check.views import HealthCheckView

urlpatterns = [
    path("health/", HealthCheckView.as_view(checks=[("health_check.checks.Cache",
                                                      {"alias": "default"})])),
]
