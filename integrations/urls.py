from django.urls import path

from integrations import views

app_name = "integrations"

urlpatterns = [
    path("crm/", views.crm_settings, name="crm-settings"),
    path(
        "crm/salesforce/connect/", views.salesforce_connect, name="salesforce-connect"
    ),
    path(
        "crm/salesforce/callback/",
        views.salesforce_callback,
        name="salesforce-callback",
    ),
    path("crm/salesforce/<int:pk>/", views.connection_detail, name="connection-detail"),
    path(
        "crm/salesforce/<int:pk>/sync/",
        views.connection_sync_now,
        name="connection-sync",
    ),
    path(
        "crm/salesforce/<int:pk>/disconnect/",
        views.connection_disconnect,
        name="connection-disconnect",
    ),
]
