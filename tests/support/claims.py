"""A user with every standard claim (OIDC Core §5.1) this server keeps, for the claims tests."""

from __future__ import annotations

from dataclasses import replace

from authserver.protocol.models import User

ADDRESS = {
    "formatted": "1 rue de Rivoli\n75001 Paris\nFrance",
    "street_address": "1 rue de Rivoli",
    "locality": "Paris",
    "region": "Île-de-France",
    "postal_code": "75001",
    "country": "FR",
}


def with_standard_claims(user: User) -> User:
    """``user`` as Jane Doe of Paris, with a verified email and phone number."""
    return replace(
        user,
        email="jane@example.com",
        email_verified=True,
        name="Jane Doe",
        given_name="Jane",
        family_name="Doe",
        locale="fr-FR",
        zoneinfo="Europe/Paris",
        phone_number="+33 1 23 45 67 89",
        phone_number_verified=True,
        address=ADDRESS,
    )
