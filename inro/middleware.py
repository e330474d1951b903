"""Security headers Django does not set itself: a strict Content-Security-Policy."""

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse

CSP_HEADER = "Content-Security-Policy"


class ContentSecurityPolicyMiddleware:
    """Send settings.CONTENT_SECURITY_POLICY on every response that has none (no inline scripts).

    A view may set its own header, or opt out with `csp_exempt` (e.g. a third-party docs page).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.policy = getattr(settings, "CONTENT_SECURITY_POLICY", "")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.policy and CSP_HEADER not in response and not getattr(response, "csp_exempt", False):
            response[CSP_HEADER] = self.policy
        return response


def csp_exempt(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Leave this view's responses without the site-wide Content-Security-Policy."""

    @wraps(view)
    def wrapped(*args, **kwargs) -> HttpResponse:
        response = view(*args, **kwargs)
        response.csp_exempt = True
        return response

    return wrapped
