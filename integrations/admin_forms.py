"""Forms for the import configuration, checked against what describe shows."""

from collections import defaultdict

from django import forms
from django.core.exceptions import ValidationError

from integrations.configuration import (
    describe_cached,
    describe_fresh,
    describe_parents,
    filter_check,
    filter_check_length,
    signal_rule_check,
)
from integrations.models import (
    FieldMapping,
    ObjectMapping,
    SalesforceConnection,
    SignalRule,
)
from integrations.salesforce.names import is_api_name
from integrations.salesforce.schema import ObjectSchema
from integrations.sync.defaults import ATTRIBUTES, default_objects
from integrations.sync.plan import HIDDEN_WORDS
from integrations.transforms import TRANSFORM_CHOICES, TRANSFORMS

TRANSFORM_HELP = " · ".join(f"{t.label}: {t.help}" for t in TRANSFORMS.values())


class ObjectMappingForm(forms.ModelForm):
    class Meta:
        model = ObjectMapping
        fields = [
            "connection",
            "object_name",
            "target",
            "is_enabled",
            "position",
            "filter",
            "cursor_field",
            "person_lookup_field",
            "organisation_lookup_field",
            "owner_lookup_field",
        ]
        widgets = {"filter": forms.Textarea(attrs={"rows": 3, "cols": 80})}

    def clean(self):
        cleaned = super().clean()
        connection = cleaned.get("connection")
        object_name = cleaned.get("object_name")
        if not connection or not object_name or self.errors:
            return cleaned
        if not is_api_name(object_name):
            # Said by the model's own check; never sent to Salesforce.
            return cleaned

        # Describe now: the object must exist for the connected user, and
        # the filter and lookups are checked against its fields.
        schema = describe_fresh(connection=connection, object_name=object_name)
        cleaned["object_name"] = schema.name
        lookups = {n: t for n, t in LOOKUP_TARGETS.items() if cleaned.get(n)}
        imported = self._imported(connection) if lookups else {}
        for name, target in lookups.items():
            problem = self._lookup_problem(
                schema=schema,
                field=cleaned[name],
                target=target,
                imported=imported.get(target, []),
            )
            if problem:
                self.add_error(name, problem)
        try:
            condition = filter_check(
                text=cleaned.get("filter", ""),
                schema=schema,
                describe=describe_parents(connection=connection),
            )
        except ValidationError as exc:
            self.add_error("filter", exc)
            return cleaned
        try:
            filter_check_length(schema=schema, condition=condition)
        except ValidationError as exc:
            self.add_error("filter", exc)
        return cleaned

    def _imported(self, connection: SalesforceConnection) -> dict[str, list[str]]:
        """Name the objects imported as each target: by the connection's other
        mappings, or, before it has any, by those a new connection gets."""
        rows = list(
            ObjectMapping.objects.filter(connection=connection)
            .exclude(pk=self.instance.pk)
            .values_list("target", "object_name")
        )
        if not rows:
            return {t: default_objects(target=t) for t in LOOKUP_TARGETS.values()}
        imported: dict[str, list[str]] = defaultdict(list)
        for target, object_name in rows:
            imported[target].append(object_name)
        return imported

    def _lookup_problem(
        self,
        *,
        schema: ObjectSchema,
        field: str,
        target: str,
        imported: list[str],
    ) -> str | None:
        """Say why a lookup cannot link rows to what is imported as `target`.

        A link is made from the Id a lookup holds to a row imported from the
        object it points to; one to an object imported as nothing else would
        link nothing, silently.
        """
        described = schema.fields.get(field.lower())
        if described is None:
            return f"{schema.name} has no field {field} the user can see."
        if described.get("type") != "reference":
            return (
                f"{schema.name}.{described['name']} is a {described.get('type')} "
                "field, not a lookup."
            )
        # A polymorphic lookup (a Case's owner, a User or a queue) links the
        # rows whose Id is of an imported object.
        points_to = described.get("referenceTo") or []
        if {name.lower() for name in points_to} & {n.lower() for n in imported}:
            return None
        plural = ROLE_PLURALS[target]
        return (
            f"{described['name']} on {schema.name} points to "
            f"{' or '.join(points_to) or 'no object'}, which is not imported as "
            f"{plural}; {plural} come from {', '.join(imported) or 'no object yet'}."
        )


# The lookups of a mapping, and what each links a row to.
LOOKUP_TARGETS = {
    "person_lookup_field": ObjectMapping.Target.PERSON,
    "organisation_lookup_field": ObjectMapping.Target.ORGANISATION,
    "owner_lookup_field": ObjectMapping.Target.OWNER,
}
ROLE_PLURALS = {
    ObjectMapping.Target.PERSON: "people",
    ObjectMapping.Target.ORGANISATION: "organisations",
    ObjectMapping.Target.OWNER: "owners",
}


class FieldMappingForm(forms.ModelForm):
    transform = forms.ChoiceField(choices=TRANSFORM_CHOICES, required=False)

    class Meta:
        model = FieldMapping
        fields = [
            "salesforce_field",
            "attribute",
            "custom_name",
            "transform",
            "transform_argument",
        ]

    def __init__(self, *args, object_mapping: ObjectMapping | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.object_mapping = object_mapping
        self.fields["transform"].help_text = TRANSFORM_HELP
        if object_mapping is None:
            return

        self.fields["attribute"] = forms.ChoiceField(
            choices=[("", "— a custom value —")]
            + [(a, a.replace("_", " ")) for a in ATTRIBUTES[object_mapping.target]],
            required=False,
        )
        schema = describe_cached(
            connection=object_mapping.connection, object_name=object_mapping.object_name
        )
        if schema is None:
            return
        # A picker of the fields describe lists for this org, with their
        # types; a mapped field describe no longer lists stays selectable.
        choices = [
            (f["name"], f"{f['name']} ({f['type']})")
            for f in sorted(schema.fields.values(), key=lambda f: f["name"])
        ]
        current = self.initial.get("salesforce_field") or ""
        if current and schema.canonical(current) is None:
            choices.insert(0, (current, f"{current} ({HIDDEN_WORDS})"))
        self.fields["salesforce_field"] = forms.ChoiceField(
            choices=[("", "---------")] + choices
        )

    def clean_attribute(self):
        attribute = self.cleaned_data.get("attribute", "")
        if attribute and self.object_mapping is not None:
            allowed = ATTRIBUTES[self.object_mapping.target]
            if attribute not in allowed:
                raise ValidationError(
                    f"A {self.object_mapping.get_target_display().lower()} has no "
                    f"attribute {attribute}; choose one of {', '.join(allowed)}."
                )
        return attribute


class _MappingChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: ObjectMapping) -> str:
        return f"{obj.object_name} of {obj.connection} ({obj.connection.workspace})"


class SignalRuleForm(forms.ModelForm):
    """A signal rule, checked against its object's describe when saved."""

    object_mapping = _MappingChoice(
        queryset=ObjectMapping.objects.select_related(
            "connection", "connection__workspace"
        ),
        label="Object",
        help_text="The connection's mapped object whose records the rule watches.",
    )

    class Meta:
        model = SignalRule
        fields = [
            "object_mapping",
            "name",
            "kind",
            "field_name",
            "value",
            "condition",
            "is_enabled",
        ]
        widgets = {"condition": forms.Textarea(attrs={"rows": 3, "cols": 80})}

    def clean(self):
        cleaned = super().clean()
        if self.errors or not cleaned.get("object_mapping"):
            return cleaned
        rule = SignalRule(
            object_mapping=cleaned["object_mapping"],
            kind=cleaned.get("kind", ""),
            field_name=cleaned.get("field_name", ""),
            value=cleaned.get("value", ""),
            condition=cleaned.get("condition", ""),
        )
        try:
            signal_rule_check(rule=rule)
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):
                for field, errors in exc.error_dict.items():
                    self.add_error(field if field in self.fields else None, errors)
            else:
                self.add_error(None, exc)
            return cleaned
        # Kept as describe spells them; the other kind's fields emptied.
        for name in ("field_name", "value", "condition"):
            cleaned[name] = getattr(rule, name)
        return cleaned
