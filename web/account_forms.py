"""Sign-in and password-reset forms for the customer web app (labels and autocomplete for a11y)."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm


class SignInForm(AuthenticationForm):
    username = forms.EmailField(
        label="Email",
        max_length=254,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email", "spellcheck": "false"}),
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That email and password don't match an account. Check both and try again.",
    }

    def clean_username(self) -> str:
        # Accounts store emails lower-cased (UserManager); accept any case at the door.
        return self.cleaned_data["username"].strip().lower()

    def clean(self):
        # Brute force (issue 8): refuse while this email+address is locked out, count each failure.
        from accounts import throttling  # noqa: PLC0415

        email, ip = self.cleaned_data.get("username") or "", throttling.client_ip(self.request)
        if email and throttling.login_locked(email=email, ip=ip):
            raise forms.ValidationError(throttling.locked_message(), code="throttled")
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            if email:
                throttling.login_failed(email=email, ip=ip)
            raise
        throttling.login_succeeded(email=email, ip=ip)
        return cleaned


class ResetForm(PasswordResetForm):
    email = forms.EmailField(
        label="Email", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )
