from django.urls import path

from jobs import views

app_name = "jobs"

urlpatterns = [
    path("events/", views.events_receive, name="events"),
]
