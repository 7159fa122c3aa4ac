from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="integrations:crm-settings")),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("settings/integrations/", include("integrations.urls")),
    path("api/", include("jobs.urls")),
]
