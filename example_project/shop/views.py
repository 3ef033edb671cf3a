"""The shop's pages. Paying is the payment app's job: the order page only shows its form."""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from golomt_payments import services
from golomt_payments.models import Status
from shop.cart import Cart
from shop.forms import CheckoutForm, QuantityForm
from shop.models import Order, OrderLine, Product

RECENT_ORDERS_KEY = "recent_orders"


@require_GET
def product_list(request: HttpRequest) -> HttpResponse:
    products = Product.objects.filter(is_active=True)
    return render(request, "shop/product_list.html", {"products": products})


@require_POST
def cart_add(request: HttpRequest, slug: str) -> HttpResponse:
    product = get_object_or_404(Product, slug=slug, is_active=True)
    Cart(request.session).add(product)
    messages.success(request, _("%(name)s was added to your cart.") % {"name": product.name})
    return redirect("shop:products")


@require_POST
def cart_update(request: HttpRequest, slug: str) -> HttpResponse:
    product = get_object_or_404(Product, slug=slug)
    form = QuantityForm(request.POST)
    if form.is_valid():
        Cart(request.session).set(product, form.cleaned_data["quantity"])
    return redirect("shop:cart")


@require_GET
def cart_detail(request: HttpRequest) -> HttpResponse:
    cart = Cart(request.session)
    return render(
        request,
        "shop/cart.html",
        {"lines": cart.lines(), "total": cart.total(), "form": CheckoutForm()},
    )


@require_POST
def checkout(request: HttpRequest) -> HttpResponse:
    """Turn the cart into an order; the customer pays on the order's own page."""
    cart = Cart(request.session)
    lines = cart.lines()
    form = CheckoutForm(request.POST)
    if not lines:
        messages.error(request, _("Your cart is empty."))
        return redirect("shop:products")
    if not form.is_valid():
        return render(
            request, "shop/cart.html", {"lines": lines, "total": cart.total(), "form": form}
        )
    with transaction.atomic():
        order = Order.objects.create(
            customer_name=form.cleaned_data["customer_name"],
            phone=form.cleaned_data["phone"],
            total=cart.total(),
        )
        OrderLine.objects.bulk_create(
            OrderLine(
                order=order,
                product=line.product,
                name=line.product.name,
                unit_price=line.product.price,
                quantity=line.quantity,
            )
            for line in lines
        )
    cart.clear()
    recent = [order.number, *request.session.get(RECENT_ORDERS_KEY, [])][:10]
    request.session[RECENT_ORDERS_KEY] = recent
    return redirect(order)


@require_GET
def order_detail(request: HttpRequest, number: str) -> HttpResponse:
    """Paid, being paid, or to pay: what the payment signals recorded, and what the payment
    app's one-payment-per-order rule allows (never a second "Pay" while a payment is open)."""
    order = get_object_or_404(Order.objects.prefetch_related("lines"), number=number)
    payments = services.order_state(order.number)
    payable = None if order.is_paid else payments.payable
    latest = payments.latest
    context = {
        "order": order,
        "invoice": payable or latest,
        # The bank has the money; the shop's own receiver has not marked the order yet.
        "received": not order.is_paid and payments.is_paid,
        # A payment is under way: back to the bank's page, not a second one.
        "waiting": payable is not None and payable.is_open,
        # Declined, but the same bank page takes another card while its timer runs.
        "retry": payable is not None and payable.status == Status.FAILED,
        "failed": (
            not order.is_paid
            and payments.can_pay
            and latest is not None
            and latest.status in (Status.FAILED, Status.EXPIRED)
        ),
        "can_pay": not order.is_paid and payments.can_pay,
    }
    return render(request, "shop/order_detail.html", context)


@require_GET
def order_list(request: HttpRequest) -> HttpResponse:
    """This browser's recent orders (the order number is the key to an order)."""
    numbers = request.session.get(RECENT_ORDERS_KEY, [])
    orders = Order.objects.filter(number__in=numbers)
    return render(request, "shop/order_list.html", {"orders": orders})
