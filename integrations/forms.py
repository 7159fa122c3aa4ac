from django import forms

from integrations.models import SalesforceConnection


class ConnectSalesforceForm(forms.Form):
    environment = forms.ChoiceField(
        choices=SalesforceConnection.Environment.choices,
        widget=forms.RadioSelect,
        initial=SalesforceConnection.Environment.PRODUCTION,
        help_text="Sandbox orgs sign in at test.salesforce.com or a sandbox My Domain.",
    )
    my_domain = forms.CharField(
        required=False,
        max_length=255,
        label="My Domain URL (optional)",
        help_text="For example https://acme.my.salesforce.com. Leave empty to "
        "sign in at login.salesforce.com or test.salesforce.com.",
    )
