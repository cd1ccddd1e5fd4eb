"""Password rules: Django's validators refuse short, common, numeric and user-like passwords."""
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError


@pytest.mark.parametrize("password", ["12345678", "password", "1234567890", "password12", "annotator1"])
def test_weak_passwords_are_refused(password):
    user = get_user_model()(username="annotator1")
    with pytest.raises(ValidationError):
        validate_password(password, user=user)


@pytest.mark.parametrize("username", ["admin", "lead", "annotator"])
def test_the_demo_password_passes(username):
    validate_password("maskloop-demo", user=get_user_model()(username=username))
