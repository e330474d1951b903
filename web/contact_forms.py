"""Forms of the contacts pages: the database filters and the manual actions (DM, add to folder)."""

from django import forms

from contacts.models import Contact, Folder, Tag
from contacts.services import MANUAL_MESSAGE_MAX_LENGTH

ACTIVATED_CHOICES = [("", "Any"), ("yes", "Activated this month"), ("no", "Not activated this month")]


class ContactFilterForm(forms.Form):
    q = forms.CharField(
        label="Search", max_length=100, required=False,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "@username, name or Instagram id"}),
        error_messages={"max_length": "Search for at most 100 characters."},
    )
    source = forms.ChoiceField(
        label="Source", required=False, choices=[("", "All sources"), *Contact.Source.choices],
        error_messages={"invalid_choice": "Choose a source from the list."},
    )
    activated = forms.ChoiceField(
        label="This month", required=False, choices=ACTIVATED_CHOICES,
        error_messages={"invalid_choice": "Choose activated, not activated or any."},
    )
    folder = forms.TypedChoiceField(
        label="Folder", required=False, coerce=int, empty_value=None,
        error_messages={"invalid_choice": "Choose one of this workspace's folders."},
    )
    tag = forms.ChoiceField(
        label="Tag", required=False, error_messages={"invalid_choice": "Choose one of this workspace's tags."}
    )

    def __init__(self, *args, folders: list[Folder], tags: list[Tag], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["folder"].choices = [("", "All folders")] + [(str(f.pk), f.name) for f in folders]
        self.fields["tag"].choices = [("", "All tags")] + [(t.name, t.name) for t in tags]

    def filters(self) -> dict:
        """The validated filters; none at all when any input is bad (the error is shown instead)."""
        if not self.is_bound or not self.is_valid():
            return {}
        return {key: value for key, value in self.cleaned_data.items() if value not in ("", None)}


class MessageForm(forms.Form):
    text = forms.CharField(
        label="Message", max_length=MANUAL_MESSAGE_MAX_LENGTH, strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Write a direct message…"}),
        error_messages={"required": "Write a message before sending.",
                        "max_length": f"Instagram messages are at most {MANUAL_MESSAGE_MAX_LENGTH:,} characters."},
    )


class FolderAddForm(forms.Form):
    folder = forms.TypedChoiceField(
        label="Folder", required=False, coerce=int, empty_value=None,
        error_messages={"invalid_choice": "Choose one of this workspace's folders."},
    )
    new_folder = forms.CharField(label="Or a new folder", max_length=80, required=False,
                                 widget=forms.TextInput(attrs={"placeholder": "New folder name"}),
                                 error_messages={"max_length": "Folder names are at most 80 characters."})

    def __init__(self, *args, folders: list[Folder], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["folder"].choices = [("", "Choose a folder")] + [(str(f.pk), f.name) for f in folders]

    def clean(self) -> dict:
        data = super().clean()
        if not self.errors and not data.get("folder") and not data.get("new_folder"):
            self.add_error("folder", "Choose a folder or name a new one.")
        if data.get("folder") and data.get("new_folder"):
            self.add_error("new_folder", "Choose an existing folder or a new name, not both.")
        return data
