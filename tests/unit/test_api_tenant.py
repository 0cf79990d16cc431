import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from batchpredict.api import tenant_of
from batchpredict.errors import UnauthenticatedError


def event(identity: dict[str, str | None]) -> APIGatewayProxyEvent:
    return APIGatewayProxyEvent({"requestContext": {"identity": identity}})


def test_tenant_of_iam_user_is_its_arn() -> None:
    arn = "arn:aws:iam::123456789012:user/alice"
    assert tenant_of(event({"userArn": arn})) == arn


def test_tenant_of_assumed_role_session_is_the_role() -> None:
    a = tenant_of(event({"userArn": "arn:aws:sts::123456789012:assumed-role/Batch/session-1"}))
    b = tenant_of(event({"userArn": "arn:aws:sts::123456789012:assumed-role/Batch/session-2"}))
    assert a == b == "arn:aws:iam::123456789012:role/Batch"


def test_tenant_of_no_identity_is_unauthenticated() -> None:
    with pytest.raises(UnauthenticatedError):
        tenant_of(event({"userArn": None, "caller": None, "accountId": None}))
