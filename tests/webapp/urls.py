from django.urls import path

from tests.webapp import views

urlpatterns = [
    path("async-page", views.async_page),
    path("sync-page", views.sync_page),
    path("async-decorated", views.async_decorated),
    path("async-session", views.async_session),
    path("sync-session", views.sync_session),
]
