"""The old system's models, mapped onto the service's tables (managed=False: Django never creates them)."""

import uuid

from django.db import models


def new_id() -> str:
    return str(uuid.uuid4())


class User(models.Model):
    id = models.CharField(primary_key=True, max_length=36)
    email = models.CharField(max_length=254)
    is_authenticated = True  # what DRF's IsAuthenticated asks of request.user

    class Meta:
        managed = False
        db_table = "users"


class ApiToken(models.Model):
    token_hash = models.CharField(primary_key=True, max_length=64)
    user = models.ForeignKey(User, models.DO_NOTHING)

    class Meta:
        managed = False
        db_table = "api_tokens"


class Service(models.Model):
    id = models.CharField(primary_key=True, max_length=36)
    name = models.CharField(max_length=200)

    class Meta:
        managed = False
        db_table = "services"


class Cart(models.Model):
    class StatusChoices(models.TextChoices):
        ACTIVE = "ACTIVE"
        CONVERTED = "CONVERTED"
        DELETED = "DELETED"

    id = models.CharField(primary_key=True, max_length=36)
    user = models.ForeignKey(User, models.DO_NOTHING)
    status = models.CharField(max_length=16, choices=StatusChoices.choices)
    selected_date = models.DateField(null=True)
    selected_time = models.TimeField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        managed = False
        db_table = "carts"


class CartItem(models.Model):
    id = models.CharField(primary_key=True, max_length=36)
    cart = models.ForeignKey(Cart, models.DO_NOTHING, related_name="items")
    service = models.ForeignKey(Service, models.DO_NOTHING)
    quantity = models.IntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True)

    class Meta:
        managed = False
        db_table = "cart_items"


class Payment(models.Model):
    transaction_id = models.CharField(primary_key=True, max_length=15)
    cart = models.ForeignKey(Cart, models.DO_NOTHING)
    user = models.ForeignKey(User, models.DO_NOTHING)
    status = models.CharField(max_length=16)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    provider_order_id = models.CharField(max_length=64, null=True)
    provider_payment_id = models.CharField(max_length=64, null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        managed = False
        db_table = "payments"


class Booking(models.Model):
    id = models.CharField(primary_key=True, max_length=36, default=new_id)
    cart = models.ForeignKey(Cart, models.DO_NOTHING)
    payment = models.ForeignKey(Payment, models.DO_NOTHING, db_column="transaction_id")
    user = models.ForeignKey(User, models.DO_NOTHING)
    status = models.CharField(max_length=16)
    selected_date = models.DateField()
    selected_time = models.TimeField()
    total = models.DecimalField(max_digits=12, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        managed = False
        db_table = "bookings"
