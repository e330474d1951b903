"""Sign-in and password-reset forms for the customer web app (labels and autocomplete for a11y)."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm

from accounts import throttling


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

    device_key = ""

    def clean(self):
        # The sign-in limits the API shares (accounts.throttling): growing waits, trusted devices.
        email, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if email and password is not None:
            cookie = self.request.COOKIES.get(throttling.DEVICE_COOKIE) if self.request is not None else None
            attempt = throttling.sign_in_attempt(request=self.request, email=email, password=password,
                                                 device_key=cookie)
            if attempt.wait:
                raise forms.ValidationError(throttling.wait_message(attempt.wait), code="throttled")
            if attempt.user is None:
                raise self.get_invalid_login_error()
            self.user_cache, self.device_key = attempt.user, attempt.device_key
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


class ResetForm(PasswordResetForm):
    email = forms.EmailField(
        label="Email", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )
