import factory
from django.contrib.auth import get_user_model

from integrations.models import SalesforceConnection
from trig_crm.models import Membership, Workspace


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Workspace {n}")
    slug = factory.Sequence(lambda n: f"workspace-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.Sequence(lambda n: f"user{n}@customer.example")
    password = factory.django.Password("a-long-password")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    workspace = factory.SubFactory(WorkspaceFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.OWNER


class SalesforceConnectionFactory(factory.django.DjangoModelFactory):
    """A connection whose tokens no org knows; for tests that make no call."""

    class Meta:
        model = SalesforceConnection

    workspace = factory.SubFactory(WorkspaceFactory)
    environment = SalesforceConnection.Environment.PRODUCTION
    login_host = "login.salesforce.com"
    instance_url = "https://acme.my.salesforce.com"
    org_id = factory.Sequence(lambda n: f"00D{n:012d}AAA")
    user_id = "005000000000001AAA"
    access_token = "access-token"
    refresh_token = "refresh-token"
