"""A tiny shop that takes payments through golomt_payments: products, a cart, orders."""
