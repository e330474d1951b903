"""Staff forms: bonus grants and plan edits."""

from django import forms

from billing.models import Plan


class BonusGrantForm(forms.Form):
    amount = forms.IntegerField(
        min_value=1, max_value=1_000_000, label="Bonus activations",
        help_text="Added to this month's quota of each selected workspace.",
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), max_length=2000,
        help_text="Required. Kept with the grant and your name.",
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why this bonus is granted.")
        return reason


class PlanAdminForm(forms.ModelForm):
    apply_now = forms.BooleanField(
        required=False, label="Apply now",
        help_text="Unticked, a quota change applies from next month for existing subscribers. "
        "Ticked, this month's quotas are recomputed at once (never below what is activated); recorded.",
    )

    class Meta:
        model = Plan
        fields = [
            "code", "name", "monthly_activations", "price_cents", "currency", "addon_pack_size",
            "addon_pack_price_cents", "stripe_price_id", "stripe_addon_price_id", "is_public", "sort_order",
        ]
