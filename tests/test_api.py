"""The REST API: every endpoint, who may use it, bad input, bank errors, and every answer
checked against the OpenAPI schema the API publishes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.urls import reverse
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.validation import validate_schema
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.test import APIClient

from golomt_payments import conf
from golomt_payments.api.schema import ApiSchemaGenerator
from golomt_payments.models import (
    CardRegistration,
    CardToken,
    Invoice,
    Method,
    RegistrationStatus,
    ReturnType,
    Status,
)
from golomt_payments.sandbox.cards import Behaviour
from golomt_payments.testing.sandbox import SandboxBank
from tests.factories import CardTokenFactory, InvoiceFactory
from tests.helpers import CARD_TOKEN, FakeBank

pytestmark = pytest.mark.django_db

RESOLVER = "tests.test_api.price_order"
ORDERS = {"ORDER-1": Decimal("1000.00"), "ORDER-2": Decimal("25000.50")}
DEEPLINK = "myshop://payments/done"
PASSWORD = "correct horse battery staple"
ALLOW_ANY = "rest_framework.permissions.AllowAny"

# Schema paths, as the shop's URLconf (tests/urls.py) mounts the app at payments/.
PAYMENTS = "/payments/api/payments/"
PAYMENT = "/payments/api/payments/{key}/"
CARDS = "/payments/api/cards/"
CARD = "/payments/api/cards/{id}/"
CARD_PAY = "/payments/api/cards/{id}/pay/"
CARD_ADD = "/payments/api/cards/add/"
REGISTRATION = "/payments/api/cards/add/{key}/"


def price_order(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    """The shop's resolver in these tests: a fixed price list."""
    if data["order"] not in ORDERS:
        raise NotFound("No such order.")
    return {"amount": ORDERS[data["order"]], "metadata": {"via": "api"}}


class DenyAll(BasePermission):
    message = "The shop says no."

    def has_permission(self, request: Any, view: Any) -> bool:
        return False


def golomt(**extra: Any) -> dict[str, Any]:
    """The test settings' GOLOMT_PAYMENTS with the resolver and ``extra``."""
    from django.conf import settings

    return {**settings.GOLOMT_PAYMENTS, "API_ORDER_RESOLVER": RESOLVER, **extra}


@pytest.fixture(autouse=True)
def resolver(settings: Any) -> None:
    settings.GOLOMT_PAYMENTS = golomt()


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def other(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("bob", password=PASSWORD)


@pytest.fixture
def api(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


# --- the schema -------------------------------------------------------------------------------


def _generate() -> dict[str, Any]:
    GENERATOR_STATS.reset()
    generated: dict[str, Any] = ApiSchemaGenerator().get_schema(request=None, public=True)
    return generated


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return _generate()


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0's dialect as plain JSON Schema: ``nullable`` as a null alternative, and no
    field the schema does not name (a leaked token would fail here)."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _json_schema(value) for key, value in node.items()}
    if "properties" in converted:
        converted.setdefault("additionalProperties", False)
    if converted.pop("nullable", False):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def assert_documented(schema: dict[str, Any], path: str, method: str, response: Any) -> Any:
    """The response's status is documented for the operation, and its body matches."""
    operation = schema["paths"][path][method]
    code = str(response.status_code)
    assert code in operation["responses"], f"{method.upper()} {path}: {code} not documented"
    documented = operation["responses"][code]
    if "content" not in documented:
        assert not response.content
        return None
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    target = documented["content"]["application/json"]["schema"]
    jsonschema.validate(
        body, {**_json_schema(target), "components": _json_schema(schema["components"])}
    )
    return body


def test_schema_is_valid_openapi_without_warnings(schema: dict[str, Any]) -> None:
    # The suite does not configure drf-spectacular as DRF's schema class: the API must not need it.
    assert "drf_spectacular" not in api_settings.DEFAULT_SCHEMA_CLASS.__module__
    _generate()
    assert not GENERATOR_STATS._warn_cache and not GENERATOR_STATS._error_cache
    validate_schema(schema)
    assert set(schema["paths"]) == {
        PAYMENTS,
        PAYMENT,
        CARDS,
        CARD,
        CARD_PAY,
        CARD_ADD,
        REGISTRATION,
    }


def test_schema_describes_only_the_api(schema: dict[str, Any]) -> None:
    assert not [path for path in schema["paths"] if "/api/" not in path]
    assert "token" not in schema["components"]["schemas"]["Card"]["properties"]


@pytest.mark.parametrize("component", ["PaymentCreateRequest", "CardAddRequest"])
def test_schema_says_what_a_callback_may_be(schema: dict[str, Any], component: str) -> None:
    callback = schema["components"]["schemas"][component]["properties"]["callback"]
    assert (callback["type"], callback["format"], callback["maxLength"]) == ("string", "uri", 500)
    described = callback["description"]
    for words in (
        "app's own scheme",
        "https app link",
        "this site",
        "ALLOWED_REDIRECT_HOSTS",
        "MOBILE",
    ):
        assert words in described
    assert "myshop://" in described


def test_schema_endpoint_serves_the_schema_to_anybody(
    anonymous: APIClient, schema: dict[str, Any]
) -> None:
    response = anonymous.get(reverse("golomt_payments:api:schema"))
    assert response.status_code == 200
    served = json.loads(response.content)
    validate_schema(served)
    assert served["paths"].keys() == schema["paths"].keys()
    assert served["info"]["title"] == "Golomt payments API"


# --- creating a payment -----------------------------------------------------------------------


def test_create_payment_prices_the_order_and_returns_the_bank_page(
    api: APIClient, user: Any, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    fake_bank.invoice(bank_invoice="bank-inv-1")
    response = api.post(payments_url(), {"order": "ORDER-2", "amount": "1"}, format="json")

    assert response.status_code == 201
    body = assert_documented(schema, PAYMENTS, "post", response)
    invoice = Invoice.objects.get(key=body["key"])
    assert body["amount"] == "25000.50"  # the shop's price; the client's "amount" is ignored
    assert invoice.amount == Decimal("25000.50")
    assert (invoice.owner, invoice.reference, invoice.metadata) == (user, "ORDER-2", {"via": "api"})
    assert body["status"] == Status.PENDING and body["method"] == "card"
    assert body["payment_url"].startswith("https://bank.test/")
    assert "bank-inv-1" in body["payment_url"]
    assert body["socialpay_deeplink"] is None
    assert response["Location"] == reverse("golomt_payments:api:payment-detail", args=[invoice.key])
    sent = fake_bank.sent("/api/invoice")
    assert sent["callback"] == "https://shop.test/payments/return/"
    assert sent["returnType"] == "POST"
    assert sent["amount"] == "25000.50"


def test_create_payment_of_an_order_whose_payment_is_open_answers_with_that_payment(
    api: APIClient, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    """One payment per order: the app asking twice (a retry, a second device) gets the same
    payment and bank page, and the bank is asked once."""
    fake_bank.invoice()
    first = api.post(payments_url(), {"order": "ORDER-1"}, format="json")
    again = api.post(payments_url(), {"order": "ORDER-1"}, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    created = assert_documented(schema, PAYMENTS, "post", first)
    same = assert_documented(schema, PAYMENTS, "post", again)
    assert (same["key"], same["payment_url"]) == (created["key"], created["payment_url"])
    assert len(fake_bank.invoices_created) == 1


def test_create_payment_of_a_paid_order_is_a_conflict_naming_the_payment(
    api: APIClient, user: Any, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    paid = InvoiceFactory(paid=True, reference="ORDER-1", owner=user)

    response = api.post(payments_url(), {"order": "ORDER-1"}, format="json")

    assert response.status_code == 409
    body = assert_documented(schema, PAYMENTS, "post", response)
    assert (body["code"], body["payment"]["key"]) == ("already_paid", str(paid.key))
    assert not fake_bank.mock.calls


def test_create_payment_for_another_amount_while_one_is_open_is_a_conflict(
    api: APIClient, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    InvoiceFactory(reference="ORDER-1", amount=Decimal("999.00"))  # the price has changed

    response = api.post(payments_url(), {"order": "ORDER-1"}, format="json")

    assert response.status_code == 409
    assert assert_documented(schema, PAYMENTS, "post", response)["code"] == "amount_changed"
    assert not fake_bank.mock.calls


def test_create_payment_while_a_saved_card_charge_is_under_way_is_a_conflict(
    api: APIClient, user: Any, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    charging = InvoiceFactory(
        reference="ORDER-1", method=Method.SAVED_CARD, bank_invoice="", owner=user
    )

    response = api.post(payments_url(), {"order": "ORDER-1"}, format="json")

    assert response.status_code == 409
    body = assert_documented(schema, PAYMENTS, "post", response)
    assert (body["code"], body["payment"]["key"]) == ("in_progress", str(charging.key))
    assert not fake_bank.mock.calls


def test_create_socialpay_payment_returns_the_deeplink(
    api: APIClient, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    fake_bank.invoice(bank_invoice="bank-inv-2")
    response = api.post(
        payments_url(), {"order": "ORDER-1", "method": "socialpay", "language": "en"}, format="json"
    )
    body = assert_documented(schema, PAYMENTS, "post", response)
    assert response.status_code == 201
    assert body["method"] == "socialpay"
    assert body["socialpay_deeplink"] == "socialpay-payment://key=bank-inv-2"
    assert fake_bank.sent("/api/invoice")["socialDeeplink"] == "Y"
    assert Invoice.objects.get(key=body["key"]).language == "en"


def test_create_mobile_payment_sends_the_app_deeplink(
    api: APIClient, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    fake_bank.invoice()
    response = api.post(
        payments_url(), {"order": "ORDER-1", "callback": DEEPLINK, "save_card": True}, format="json"
    )
    body = assert_documented(schema, PAYMENTS, "post", response)
    assert response.status_code == 201
    sent = fake_bank.sent("/api/invoice")
    assert (sent["returnType"], sent["callback"], sent["genToken"]) == ("MOBILE", DEEPLINK, "Y")
    invoice = Invoice.objects.get(key=body["key"])
    assert (invoice.return_type, invoice.gen_token) == (ReturnType.MOBILE, True)


def test_a_deeplink_the_bank_sends_that_could_run_a_script_is_not_passed_on(
    api: APIClient, fake_bank: FakeBank
) -> None:
    fake_bank.invoice(social_deeplink="javascript:alert(1)")
    response = api.post(payments_url(), {"order": "ORDER-1", "method": "socialpay"}, format="json")
    assert response.status_code == 201
    assert response.json()["socialpay_deeplink"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "order"),
        ({"order": ""}, "order"),
        ({"order": "x" * 101}, "order"),
        ({"order": "ORDER-1", "method": "token"}, "method"),
        ({"order": "ORDER-1", "language": "de"}, "language"),
        ({"order": "ORDER-1", "return_type": "EMAIL"}, "return_type"),
        ({"order": "ORDER-1", "return_type": "MOBILE"}, "callback"),
        ({"order": "ORDER-1", "return_type": "POST", "callback": DEEPLINK}, "callback"),
        ({"order": "ORDER-1", "callback": "javascript:alert(1)"}, "callback"),
        ({"order": "ORDER-1", "callback": "no scheme here"}, "callback"),
        ({"order": "ORDER-1", "callback": "myshop://" + "x" * 500}, "callback"),
        ({"order": "ORDER-1", "save_card": "perhaps"}, "save_card"),
    ],
)
def test_create_payment_refuses_bad_input(
    api: APIClient, fake_bank: FakeBank, schema: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    response = api.post(payments_url(), body, format="json")
    assert response.status_code == 400
    assert field in assert_documented(schema, PAYMENTS, "post", response)
    assert not Invoice.objects.exists()


def test_create_payment_speaks_json_only(api: APIClient) -> None:
    response = api.post(payments_url(), {"order": "ORDER-1"})  # a form post
    assert response.status_code == 415


def test_an_unknown_order_is_the_resolvers_404(
    api: APIClient, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    response = api.post(payments_url(), {"order": "NOPE"}, format="json")
    assert response.status_code == 404
    assert assert_documented(schema, PAYMENTS, "post", response) == {"detail": "No such order."}
    assert not fake_bank.calls("/api/invoice")


def test_without_a_resolver_the_api_creates_no_payments(
    api: APIClient, user: Any, settings: Any, schema: dict[str, Any]
) -> None:
    settings.GOLOMT_PAYMENTS = golomt(API_ORDER_RESOLVER=None)
    card = CardTokenFactory(owner=user)
    for path, url in ((PAYMENTS, payments_url()), (CARD_PAY, card_pay_url(card))):
        response = api.post(url, {"order": "ORDER-1"}, format="json")
        assert response.status_code == 501
        assert "API_ORDER_RESOLVER" in assert_documented(schema, path, "post", response)["detail"]
    assert not Invoice.objects.exists()


def test_anonymous_save_card_is_refused(settings: Any, anonymous: APIClient) -> None:
    settings.GOLOMT_PAYMENTS = golomt(API_PERMISSION_CLASSES=[ALLOW_ANY])
    response = anonymous.post(
        payments_url(), {"order": "ORDER-1", "save_card": True}, format="json"
    )
    assert response.status_code == 400
    assert "save_card" in response.json()


def test_a_bank_that_refuses_is_a_502(
    api: APIClient, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    fake_bank.invoice_refused()
    response = api.post(payments_url(), {"order": "ORDER-1"}, format="json")
    assert response.status_code == 502
    assert "Nothing was charged" in assert_documented(schema, PAYMENTS, "post", response)["detail"]
    assert Invoice.objects.get().status == Status.FAILED


def test_a_bank_that_does_not_answer_is_a_503(
    api: APIClient, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    fake_bank.invoice_down()
    response = api.post(payments_url(), {"order": "ORDER-1"}, format="json")
    assert response.status_code == 503
    assert_documented(schema, PAYMENTS, "post", response)
    assert Invoice.objects.get().status == Status.NEW  # for the reconciler


# --- a payment's status -----------------------------------------------------------------------


def test_status_of_own_final_payment_does_not_ask_the_bank(
    api: APIClient, user: Any, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    invoice = InvoiceFactory(paid=True, owner=user)
    response = api.get(payment_url(invoice))
    body = assert_documented(schema, PAYMENT, "get", response)
    assert response.status_code == 200
    assert (body["status"], body["paid"], body["final"]) == ("paid", True, True)
    assert body["card_number"] == "949625******0003"
    assert response["Cache-Control"] == "no-store"
    assert not fake_bank.mock.calls


def test_status_of_an_open_payment_asks_the_bank(
    api: APIClient, user: Any, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    invoice = InvoiceFactory(owner=user)
    fake_bank.inquiry(amount="1000.00")
    body = assert_documented(schema, PAYMENT, "get", api.get(payment_url(invoice)))
    assert (body["status"], body["paid"]) == ("paid", True)
    invoice.refresh_from_db()
    assert invoice.status == Status.PAID


def test_status_when_the_bank_is_down_stays_pending(
    api: APIClient, user: Any, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    invoice = InvoiceFactory(owner=user)
    fake_bank.inquiry_down()
    response = api.get(payment_url(invoice))
    assert response.status_code == 200
    body = assert_documented(schema, PAYMENT, "get", response)
    assert (body["status"], body["final"]) == ("pending", False)


def test_status_of_somebody_elses_payment_is_a_404(
    api: APIClient, other: Any, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    for invoice in (InvoiceFactory(owner=other), InvoiceFactory(owner=None)):
        response = api.get(payment_url(invoice))
        assert response.status_code == 404
        assert_documented(schema, PAYMENT, "get", response)
    assert not fake_bank.mock.calls


# --- who may use the API ----------------------------------------------------------------------


def _every_request(user_card: CardToken, invoice: Invoice, registration: Any) -> list[Any]:
    return [
        ("post", payments_url(), {"order": "ORDER-1"}),
        ("get", payment_url(invoice), None),
        ("get", reverse("golomt_payments:api:card-list"), None),
        ("delete", reverse("golomt_payments:api:card-detail", args=[user_card.pk]), None),
        ("post", card_pay_url(user_card), {"order": "ORDER-1"}),
        ("post", reverse("golomt_payments:api:card-add"), {}),
        ("get", reverse("golomt_payments:api:card-registration", args=[registration.key]), None),
    ]


@pytest.fixture
def everything(user: Any) -> list[Any]:
    card = CardTokenFactory(owner=user)
    invoice = InvoiceFactory(owner=user)
    registration = CardRegistration.objects.create(owner=user, transaction_id="REG0001")
    return _every_request(card, invoice, registration)


def test_anonymous_is_refused_everywhere(anonymous: APIClient, everything: list[Any]) -> None:
    for method, url, body in everything:
        response = getattr(anonymous, method)(url, body, format="json")
        assert response.status_code == 403, url  # SessionAuthentication: 403, not 401
    assert CardToken.objects.get().is_active


def test_the_authentication_setting_is_honoured(
    settings: Any, user: Any, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    settings.GOLOMT_PAYMENTS = golomt(
        API_AUTHENTICATION_CLASSES=["rest_framework.authentication.BasicAuthentication"]
    )
    client = APIClient()
    response = client.get(reverse("golomt_payments:api:card-list"))
    assert response.status_code == 401  # Basic asks for credentials
    assert response["WWW-Authenticate"].startswith("Basic")
    assert_documented(schema, CARDS, "get", response)
    credentials = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {credentials}")
    assert client.get(reverse("golomt_payments:api:card-list")).status_code == 200


def test_a_custom_permission_class_from_the_setting_is_honoured(
    settings: Any, api: APIClient, everything: list[Any], fake_bank: FakeBank
) -> None:
    settings.GOLOMT_PAYMENTS = golomt(API_PERMISSION_CLASSES=["tests.test_api.DenyAll"])
    for method, url, body in everything:
        response = getattr(api, method)(url, body, format="json")
        assert response.status_code == 403, url
        assert response.json() == {"detail": "The shop says no."}
    assert not fake_bank.mock.calls


def test_where_the_shop_allows_anonymous_payments_they_see_only_ownerless_ones(
    settings: Any, anonymous: APIClient, user: Any, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    settings.GOLOMT_PAYMENTS = golomt(API_PERMISSION_CLASSES=[ALLOW_ANY])
    fake_bank.invoice()
    fake_bank.inquiry(error_code=None)
    created = anonymous.post(payments_url(), {"order": "ORDER-1"}, format="json")
    assert created.status_code == 201
    invoice = Invoice.objects.get()
    assert invoice.owner is None
    assert anonymous.get(payment_url(invoice)).status_code == 200
    assert anonymous.get(payment_url(InvoiceFactory(owner=user))).status_code == 404
    response = anonymous.get(reverse("golomt_payments:api:card-list"))
    assert response.status_code == 403  # saved cards always need a customer
    assert_documented(schema, CARDS, "get", response)


# --- saved cards ------------------------------------------------------------------------------


def test_list_cards_shows_own_active_cards_without_their_tokens(
    api: APIClient, user: Any, other: Any, schema: dict[str, Any]
) -> None:
    mine = CardTokenFactory(owner=user, card_bank="Голомт банк", card_holder="ALICE")
    CardTokenFactory(owner=user, is_active=False)
    CardTokenFactory(owner=other)
    response = api.get(reverse("golomt_payments:api:card-list"))
    body = assert_documented(schema, CARDS, "get", response)
    assert [card["id"] for card in body] == [mine.pk]
    assert body[0]["card_number"] == "949625******0003"
    assert (body[0]["bank"], body[0]["holder"]) == ("Голомт банк", "ALICE")
    assert mine.token not in response.content.decode()


def test_delete_own_card(api: APIClient, user: Any, schema: dict[str, Any]) -> None:
    card = CardTokenFactory(owner=user)
    response = api.delete(reverse("golomt_payments:api:card-detail", args=[card.pk]))
    assert response.status_code == 204
    assert_documented(schema, CARD, "delete", response)
    card.refresh_from_db()
    assert not card.is_active
    again = api.delete(reverse("golomt_payments:api:card-detail", args=[card.pk]))
    assert again.status_code == 404


def test_somebody_elses_card_is_a_404(
    api: APIClient, other: Any, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    card = CardTokenFactory(owner=other)
    response = api.delete(reverse("golomt_payments:api:card-detail", args=[card.pk]))
    assert response.status_code == 404
    assert_documented(schema, CARD, "delete", response)
    response = api.post(card_pay_url(card), {"order": "ORDER-1"}, format="json")
    assert response.status_code == 404
    assert_documented(schema, CARD_PAY, "post", response)
    card.refresh_from_db()
    assert card.is_active
    assert not fake_bank.mock.calls


def test_pay_with_a_saved_card(
    api: APIClient, user: Any, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    card = CardTokenFactory(owner=user)
    fake_bank.pay()
    response = api.post(card_pay_url(card), {"order": "ORDER-2"}, format="json")
    assert response.status_code == 201
    body = assert_documented(schema, CARD_PAY, "post", response)
    assert (body["status"], body["method"], body["amount"]) == ("paid", "saved_card", "25000.50")
    assert fake_bank.sent("/api/pay")["token"] == card.token
    assert card.token not in response.content.decode()
    assert response["Location"] == reverse("golomt_payments:api:payment-detail", args=[body["key"]])


def test_pay_with_a_saved_card_the_bank_turns_away_is_a_failed_payment(
    api: APIClient, user: Any, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    card = CardTokenFactory(owner=user)
    fake_bank.pay_refused()
    response = api.post(card_pay_url(card), {"order": "ORDER-1"}, format="json")
    assert response.status_code == 201
    body = assert_documented(schema, CARD_PAY, "post", response)
    assert (body["status"], body["final"]) == ("failed", True)


def test_pay_an_order_whose_bank_page_is_open_answers_with_it_and_charges_nothing(
    api: APIClient, user: Any, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    card = CardTokenFactory(owner=user)
    page = InvoiceFactory(reference="ORDER-1", owner=user)  # the customer opened the bank page

    response = api.post(card_pay_url(card), {"order": "ORDER-1"}, format="json")

    assert response.status_code == 200
    assert assert_documented(schema, CARD_PAY, "post", response)["key"] == str(page.key)
    assert not fake_bank.mock.calls


def test_pay_an_order_paid_on_its_timed_out_bank_page_is_a_conflict(
    api: APIClient, user: Any, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    card = CardTokenFactory(owner=user)
    page = InvoiceFactory(reference="ORDER-1", owner=user)
    Invoice.objects.filter(pk=page.pk).update(created_at=page.created_at - timedelta(minutes=13))
    fake_bank.inquiry(error_code="000")  # paid there; its push and redirect were lost

    response = api.post(card_pay_url(card), {"order": "ORDER-1"}, format="json")

    assert response.status_code == 409
    body = assert_documented(schema, CARD_PAY, "post", response)
    assert (body["code"], body["payment"]["key"]) == ("already_paid", str(page.key))
    assert not fake_bank.calls("/api/pay")


def test_pay_the_same_order_twice_while_the_first_charge_is_pending_charges_once(
    api: APIClient, user: Any, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    card = CardTokenFactory(owner=user)
    fake_bank.pay_down()  # the charge's answer is lost ...
    fake_bank.check_down()  # ... and /api/check does not answer: pending

    first = api.post(card_pay_url(card), {"order": "ORDER-1"}, format="json")
    again = api.post(card_pay_url(card), {"order": "ORDER-1"}, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert assert_documented(schema, CARD_PAY, "post", again)["key"] == first.json()["key"]
    assert len(fake_bank.calls("/api/pay")) == 1


def test_pay_the_same_order_again_for_another_amount_is_a_conflict(
    api: APIClient, user: Any, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    card = CardTokenFactory(owner=user)
    fake_bank.pay()
    assert api.post(card_pay_url(card), {"order": "ORDER-1"}, format="json").status_code == 201
    ORDERS["ORDER-1"] = Decimal("2000.00")  # the shop's price changed meanwhile
    try:
        response = api.post(card_pay_url(card), {"order": "ORDER-1"}, format="json")
    finally:
        ORDERS["ORDER-1"] = Decimal("1000.00")
    assert response.status_code == 409
    assert assert_documented(schema, CARD_PAY, "post", response)["code"] == "already_paid"
    assert len(fake_bank.calls("/api/pay")) == 1


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 400, "order"),
        ({"order": "ORDER-1", "language": "fr"}, 400, "language"),
        ({"order": "NOPE"}, 404, "detail"),
    ],
)
def test_pay_with_a_saved_card_refuses_bad_input(
    api: APIClient,
    user: Any,
    fake_bank: FakeBank,
    schema: dict[str, Any],
    body: dict[str, Any],
    status: int,
    field: str,
) -> None:
    card = CardTokenFactory(owner=user)
    response = api.post(card_pay_url(card), body, format="json")
    assert response.status_code == status
    assert field in assert_documented(schema, CARD_PAY, "post", response)
    assert not fake_bank.mock.calls


def test_start_adding_a_card(
    api: APIClient, user: Any, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    fake_bank.confirmation(bank_invoice="bank-reg-1")
    response = api.post(reverse("golomt_payments:api:card-add"), {"language": "en"}, format="json")
    assert response.status_code == 201
    body = assert_documented(schema, CARD_ADD, "post", response)
    assert body["status"] == "pending" and body["card"] is None
    assert "bank-reg-1" in body["confirmation_url"]
    registration = CardRegistration.objects.get(key=body["key"])
    assert (registration.owner, registration.language) == (user, "en")
    sent = fake_bank.sent("/api/confirmation")
    assert sent["callback"] == "https://shop.test/payments/cards/return/"
    assert sent["returnType"] == "POST"


def test_start_adding_a_card_from_the_app(
    api: APIClient, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    fake_bank.confirmation()
    response = api.post(
        reverse("golomt_payments:api:card-add"), {"callback": DEEPLINK}, format="json"
    )
    assert response.status_code == 201
    sent = fake_bank.sent("/api/confirmation")
    assert (sent["returnType"], sent["callback"]) == ("MOBILE", DEEPLINK)


@pytest.mark.parametrize(
    "body", [{"callback": "javascript:alert(1)"}, {"callback": ""}, {"language": "xx"}]
)
def test_start_adding_a_card_refuses_bad_input(
    api: APIClient, fake_bank: FakeBank, schema: dict[str, Any], body: dict[str, Any]
) -> None:
    response = api.post(reverse("golomt_payments:api:card-add"), body, format="json")
    assert response.status_code == 400
    assert set(body) <= set(assert_documented(schema, CARD_ADD, "post", response))
    assert not CardRegistration.objects.exists()


def test_start_adding_a_card_when_the_bank_is_down_is_a_503(
    api: APIClient, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    response = api.post(reverse("golomt_payments:api:card-add"), {}, format="json")
    assert response.status_code == 503
    assert_documented(schema, CARD_ADD, "post", response)


def test_the_outcome_of_adding_a_card(
    api: APIClient, user: Any, other: Any, fake_bank: FakeBank, schema: dict[str, Any]
) -> None:
    registration = CardRegistration.objects.create(
        owner=user, transaction_id="REG0001", status=RegistrationStatus.PENDING
    )
    fake_bank.get_token()
    url = reverse("golomt_payments:api:card-registration", args=[registration.key])
    body = assert_documented(schema, REGISTRATION, "get", api.get(url))
    assert body["status"] == "saved"
    assert body["card"]["card_number"] == "949625******0003"
    assert CARD_TOKEN not in json.dumps(body)

    theirs = CardRegistration.objects.create(owner=other, transaction_id="REG0002")
    response = api.get(reverse("golomt_payments:api:card-registration", args=[theirs.key]))
    assert response.status_code == 404
    assert_documented(schema, REGISTRATION, "get", response)


# --- malformed addresses ----------------------------------------------------------------------

NOT_FOUND_BODY = {"detail": "Not found."}
BAD_KEYS = [
    "not-a-uuid",
    "²",
    "-1",
    "99999999999999999999999",
    "12345678123456781234567812345678",  # a UUID's hex without its dashes
    "1234567A-1234-1234-1234-123456781234",  # upper case: not as reverse() writes it
    "{12345678-1234-1234-1234-123456781234}",
]
BAD_IDS = [
    "not-a-number",
    "99999999999999999999999",
    "9" * 5000,
    "-1",
    "+1",
    "1.0",
    "²",
    "٣",
    "0x1",
]
MISSING_KEY = "12345678-1234-1234-1234-123456781234"
MISSING_ID = str(2**63 - 1)


def _by_key(api: APIClient, name: str, key: str) -> Any:
    url = reverse(f"golomt_payments:api:{name}", kwargs={"key": key})
    return api.get(url)


def _by_id(api: APIClient, name: str, pk: str) -> Any:
    url = reverse(f"golomt_payments:api:{name}", kwargs={"pk": pk})
    if name == "card-pay":
        return api.post(url, {"order": "ORDER-1"}, format="json")
    return api.delete(url)


@pytest.mark.parametrize(
    ("name", "path"), [("payment-detail", PAYMENT), ("card-registration", REGISTRATION)]
)
@pytest.mark.parametrize("key", BAD_KEYS)
def test_a_malformed_key_is_a_json_404_like_a_missing_one(
    api: APIClient, fake_bank: FakeBank, schema: dict[str, Any], name: str, path: str, key: str
) -> None:
    response = _by_key(api, name, key)
    assert response.status_code == 404
    assert assert_documented(schema, path, "get", response) == NOT_FOUND_BODY
    missing = _by_key(api, name, MISSING_KEY)
    assert (missing.status_code, missing.json()) == (404, NOT_FOUND_BODY)
    assert not fake_bank.mock.calls


@pytest.mark.parametrize(
    ("name", "path", "method"), [("card-detail", CARD, "delete"), ("card-pay", CARD_PAY, "post")]
)
@pytest.mark.parametrize("pk", BAD_IDS)
def test_a_malformed_card_id_is_a_json_404_like_a_missing_one(
    api: APIClient,
    user: Any,
    fake_bank: FakeBank,
    schema: dict[str, Any],
    name: str,
    path: str,
    method: str,
    pk: str,
) -> None:
    card = CardTokenFactory(owner=user)
    response = _by_id(api, name, pk)
    assert response.status_code == 404
    assert assert_documented(schema, path, method, response) == NOT_FOUND_BODY
    missing = _by_id(api, name, MISSING_ID)
    assert (missing.status_code, missing.json()) == (404, NOT_FOUND_BODY)
    card.refresh_from_db()
    assert card.is_active
    assert not fake_bank.mock.calls


def test_urls_with_real_keys_still_reverse_as_before(user: Any) -> None:
    card = CardTokenFactory(owner=user)
    key = "12345678-1234-1234-1234-123456781234"
    assert reverse("golomt_payments:api:card-detail", args=[card.pk]) == (
        f"/payments/api/cards/{card.pk}/"
    )
    assert reverse("golomt_payments:api:card-pay", kwargs={"pk": card.pk}) == (
        f"/payments/api/cards/{card.pk}/pay/"
    )
    assert reverse("golomt_payments:api:payment-detail", kwargs={"key": key}) == (
        f"/payments/api/payments/{key}/"
    )
    assert reverse("golomt_payments:api:card-registration", args=[key]) == (
        f"/payments/api/cards/add/{key}/"
    )


# --- too many requests ------------------------------------------------------------------------

BASIC = ["rest_framework.authentication.BasicAuthentication"]


class CountingHasher(MD5PasswordHasher):
    """Counts every password it hashes, to check a password or to make one."""

    algorithm = "counting_md5"
    hashed = 0

    def encode(self, password: str, salt: str) -> str:
        CountingHasher.hashed += 1
        return super().encode(password, salt)


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _throttled(response: Any) -> bool:
    """A 429 that says when to come back."""
    if response.status_code != 429:
        return False
    assert 0 < int(response["Retry-After"]) <= 60
    assert "throttled" in response.json()["detail"]
    return True


def test_by_default_no_password_is_hashed_for_a_basic_header(
    settings: Any, django_user_model: Any
) -> None:
    """DRF's default authentication, without BasicAuthentication: a Basic header costs no
    password hash unless the shop names Basic in API_AUTHENTICATION_CLASSES."""
    settings.PASSWORD_HASHERS = ["tests.test_api.CountingHasher"]
    settings.REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "rest_framework.authentication.SessionAuthentication",
            "rest_framework.authentication.BasicAuthentication",
        ]
    }
    django_user_model.objects.create_user("dave", password=PASSWORD)
    CountingHasher.hashed = 0
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=_basic("dave", PASSWORD))

    response = client.get(reverse("golomt_payments:api:card-list"))

    assert response.status_code == 403  # nobody authenticated: Session alone knows no header
    assert CountingHasher.hashed == 0


def test_a_client_over_the_rate_is_refused_before_any_password_is_hashed(
    settings: Any, django_user_model: Any
) -> None:
    settings.PASSWORD_HASHERS = ["tests.test_api.CountingHasher"]
    settings.GOLOMT_PAYMENTS = golomt(API_THROTTLE_RATE="3/min", API_AUTHENTICATION_CLASSES=BASIC)
    django_user_model.objects.create_user("carol", password=PASSWORD)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=_basic("carol", "a wrong password"))
    url = reverse("golomt_payments:api:card-list")
    CountingHasher.hashed = 0

    within = [client.get(url) for _ in range(3)]
    assert [response.status_code for response in within] == [401] * 3
    assert CountingHasher.hashed == 3  # each wrong password was checked: hashed

    over = [client.get(url) for _ in range(5)]
    assert CountingHasher.hashed == 3  # ... and none of the requests over the rate was
    assert all(_throttled(response) for response in over)


def test_every_endpoint_answers_429_with_retry_after_over_the_rate(
    settings: Any,
    api: APIClient,
    everything: list[Any],
    fake_bank: FakeBank,
    schema: dict[str, Any],
) -> None:
    settings.GOLOMT_PAYMENTS = golomt(API_THROTTLE_RATE="1/min", POLL_REQUESTS_PER_MINUTE=1)
    paths = [PAYMENTS, PAYMENT, CARDS, CARD, CARD_PAY, CARD_ADD, REGISTRATION]
    assert api.get(reverse("golomt_payments:api:card-list")).status_code == 200
    assert api.get(everything[1][1]).status_code == 200  # a payment's status: its own count
    fake_bank.mock.calls.reset()

    for path, (method, url, body) in zip(paths, everything, strict=True):
        response = getattr(api, method)(url, body, format="json")
        assert _throttled(response), url
        assert assert_documented(schema, path, method, response)["detail"]
    assert CardToken.objects.get().is_active
    assert not fake_bank.mock.calls
    assert not CardRegistration.objects.exclude(transaction_id="REG0001").exists()


def test_polling_a_payments_status_does_not_use_up_the_rate_of_the_other_endpoints(
    settings: Any, api: APIClient, user: Any, fake_bank: FakeBank
) -> None:
    settings.GOLOMT_PAYMENTS = golomt(API_THROTTLE_RATE="3/min", POLL_REQUESTS_PER_MINUTE=3)
    invoice = InvoiceFactory(paid=True, owner=user)
    polls = [api.get(payment_url(invoice)).status_code for _ in range(4)]
    assert polls == [200, 200, 200, 429]
    cards = [api.get(reverse("golomt_payments:api:card-list")).status_code for _ in range(4)]
    assert cards == [200, 200, 200, 429]


def test_two_addresses_are_counted_apart(settings: Any, user: Any) -> None:
    settings.GOLOMT_PAYMENTS = golomt(API_THROTTLE_RATE="2/min")
    url = reverse("golomt_payments:api:card-list")
    first, second = APIClient(REMOTE_ADDR="203.0.113.1"), APIClient(REMOTE_ADDR="203.0.113.2")
    for client in (first, second):
        client.force_authenticate(user)
    assert [first.get(url).status_code for _ in range(3)] == [200, 200, 429]
    assert [second.get(url).status_code for _ in range(3)] == [200, 200, 429]


def test_behind_a_trusted_proxy_each_client_is_counted_by_its_forwarded_address(
    settings: Any, user: Any
) -> None:
    settings.GOLOMT_PAYMENTS = golomt(API_THROTTLE_RATE="1/min", TRUSTED_PROXY_COUNT=1)
    url = reverse("golomt_payments:api:card-list")

    def via_proxy(forwarded: str) -> int:
        client = APIClient(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)
        client.force_authenticate(user)
        return int(client.get(url).status_code)

    assert via_proxy("203.0.113.1") == 200
    assert via_proxy("203.0.113.2") == 200
    assert via_proxy("203.0.113.1") == 429
    # A forged entry in front of what the proxy appended changes nothing.
    assert via_proxy("198.51.100.7, 203.0.113.2") == 429


def test_requests_without_a_readable_address_are_not_counted(settings: Any, user: Any) -> None:
    """Counted together they would let one client lock everybody out (a server on a unix
    socket without TRUSTED_PROXY_COUNT gives no address at all)."""
    settings.GOLOMT_PAYMENTS = golomt(API_THROTTLE_RATE="1/min")
    url = reverse("golomt_payments:api:card-list")
    answers = []
    for address in ("", "not an address", "", "not an address"):
        client = APIClient(REMOTE_ADDR=address)
        client.force_authenticate(user)
        answers.append(client.get(url).status_code)
    assert answers == [200] * 4


def test_an_ipv6_client_is_counted_by_its_network(settings: Any, user: Any) -> None:
    settings.GOLOMT_PAYMENTS = golomt(API_THROTTLE_RATE="2/min")
    url = reverse("golomt_payments:api:card-list")
    answers = []
    for address in ("2001:db8:1:2::1", "2001:db8:1:2::ffff", "2001:db8:1:2:a:b:c:d"):
        client = APIClient(REMOTE_ADDR=address)
        client.force_authenticate(user)
        answers.append(client.get(url).status_code)
    assert answers == [200, 200, 429]
    other_network = APIClient(REMOTE_ADDR="2001:db8:1:3::1")
    other_network.force_authenticate(user)
    assert other_network.get(url).status_code == 200


def test_no_throttle_rate_lets_every_request_through(settings: Any, api: APIClient) -> None:
    settings.GOLOMT_PAYMENTS = golomt(API_THROTTLE_RATE="2/min")
    url = reverse("golomt_payments:api:card-list")
    assert [api.get(url).status_code for _ in range(3)] == [200, 200, 429]
    settings.GOLOMT_PAYMENTS = golomt(API_THROTTLE_RATE=None)  # read at each request
    assert {api.get(url).status_code for _ in range(70)} == {200}


def test_the_default_rate_is_sixty_a_minute(api: APIClient) -> None:
    url = reverse("golomt_payments:api:card-list")
    answers = [api.get(url).status_code for _ in range(61)]
    assert answers == [200] * 60 + [429]


# --- a mobile app against the sandbox bank ----------------------------------------------------


@pytest.fixture
def mobile_shop(golomt_sandbox: SandboxBank) -> Iterator[SandboxBank]:
    """The in-process sandbox, with the shop's resolver configured on top of its settings."""
    with override_settings(GOLOMT_PAYMENTS=golomt()):
        yield golomt_sandbox


@pytest.mark.parametrize("behaviour", [Behaviour.SUCCESS, Behaviour.BOTH_LOST])
def test_mobile_app_learns_the_result_from_the_api(
    mobile_shop: SandboxBank, api: APIClient, schema: dict[str, Any], behaviour: Behaviour
) -> None:
    created = api.post(
        payments_url(),
        {"order": "ORDER-1", "return_type": "MOBILE", "callback": DEEPLINK},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = assert_documented(schema, PAYMENTS, "post", created)
    assert body["payment_url"].startswith(mobile_shop.base_url)
    invoice = Invoice.objects.get(key=body["key"])
    assert (invoice.return_type, invoice.callback_url) == (ReturnType.MOBILE, DEEPLINK)

    # The customer pays in the bank's page; the bank opens the app (or, BOTH_LOST, neither
    # the app nor the shop hears anything). The app asks the API.
    mobile_shop.pay(invoice, behaviour)
    status = api.get(payment_url(invoice))
    assert status.status_code == 200
    assert assert_documented(schema, PAYMENT, "get", status)["status"] == "paid"


def test_mobile_socialpay_payment_against_the_sandbox(
    mobile_shop: SandboxBank, api: APIClient
) -> None:
    created = api.post(
        payments_url(),
        {"order": "ORDER-1", "method": "socialpay", "callback": DEEPLINK},
        format="json",
    )
    assert created.status_code == 201
    assert created.json()["socialpay_deeplink"]
    invoice = Invoice.objects.get(key=created.json()["key"])
    assert invoice.method == Method.SOCIALPAY
    mobile_shop.pay(invoice)
    assert api.get(payment_url(invoice)).json()["paid"] is True


# --- the settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"API_PERMISSION_CLASSES": ALLOW_ANY}, "list of dotted"),
        ({"API_PERMISSION_CLASSES": None}, "list of dotted"),
        ({"API_PERMISSION_CLASSES": ["no.such.Permission"]}, "cannot be imported"),
        ({"API_PERMISSION_CLASSES": ["tests.test_api.RESOLVER"]}, "not a class"),
        ({"API_AUTHENTICATION_CLASSES": ["rest_framework.nope.Auth"]}, "cannot be imported"),
        ({"API_ORDER_RESOLVER": "tests.test_api.nothing_here"}, "cannot be imported"),
        ({"API_ORDER_RESOLVER": "tests.test_api.RESOLVER"}, "not callable"),
        ({"API_ORDER_RESOLVER": 42}, "dotted import paths"),
    ],
)
def test_bad_api_settings_name_the_key(extra: dict[str, Any], message: str) -> None:
    key = next(iter(extra))
    with pytest.raises(ImproperlyConfigured, match=key) as raised:
        conf.build({"BEARER_TOKEN": "t", "SECRET": "s", **extra})
    assert message in str(raised.value)


def test_api_settings_defaults() -> None:
    built = conf.build({})
    from rest_framework.permissions import IsAuthenticated

    assert built.api_permission_classes == (IsAuthenticated,)
    assert built.api_authentication_classes is None
    assert built.api_order_resolver is None


@pytest.mark.parametrize(
    "answer",
    [
        None,
        {"reference": "x"},
        {"amount": "0"},
        {"amount": "1.001"},
        {"amount": 10**13},
        {"amount": 1, "colour": "red"},
        {"amount": 1, "account": "nope"},
        {"amount": 1, "metadata": []},
    ],
)
def test_a_resolver_answer_that_cannot_become_an_invoice_is_the_shops_bug(
    settings: Any, api: APIClient, answer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tests.test_api.price_order", lambda request, data: answer)
    settings.GOLOMT_PAYMENTS = golomt()  # re-import the patched resolver
    with pytest.raises(ImproperlyConfigured, match="API_ORDER_RESOLVER"):
        api.post(payments_url(), {"order": "ORDER-1"}, format="json")


# --- URLs -------------------------------------------------------------------------------------


def payments_url() -> str:
    return reverse("golomt_payments:api:payment-list")


def payment_url(invoice: Invoice) -> str:
    return reverse("golomt_payments:api:payment-detail", args=[invoice.key])


def card_pay_url(card: CardToken) -> str:
    return reverse("golomt_payments:api:card-pay", args=[card.pk])


def test_json_nested_too_deep_is_a_400_not_a_500(api: APIClient) -> None:
    body = "[" * 5000 + "]" * 5000
    response = api.post(payments_url(), body, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deep" in response.json()["detail"]


def test_the_schema_is_made_once_and_served_to_many_at_once() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from golomt_payments.api import schema as schema_module

    schema_module._generated.clear()
    url = reverse("golomt_payments:api:schema")
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: APIClient().get(url).status_code, range(8)))
    assert codes == [200] * 8
    assert len(schema_module._generated) == 1
    yaml = APIClient().get(url, {"format": "yaml"})
    assert yaml.status_code == 200 and yaml.content.startswith(b"openapi:")
