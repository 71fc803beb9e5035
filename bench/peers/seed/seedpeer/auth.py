"""Bearer tokens for DRF, as the service issues them (stored as their SHA-256)."""

import hashlib

from rest_framework import authentication, exceptions

from seedpeer.models import ApiToken


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """DRF's TokenAuthentication, for `Bearer <token>` and tokens stored as their SHA-256."""

    def authenticate(self, request):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not token:
            return None
        try:
            digest = hashlib.sha256(token.encode()).hexdigest()
            api_token = ApiToken.objects.select_related("user").get(token_hash=digest)
        except ApiToken.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        return api_token.user, api_token

    def authenticate_header(self, request):
        return "Bearer"
