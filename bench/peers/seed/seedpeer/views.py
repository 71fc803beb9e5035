"""The old confirm as seed 000 describes it: the "hyper-speed payment handler".

It books before it verifies: the booking is created and the payment set SUCCESS optimistically,
then the cart is converted with any error swallowed ("won't fail booking if cleanup has
issues"), and only then is the gateway's signature checked. Every save commits on its own
(autocommit, no transaction). Seed 000 does not show what a bad signature did after the
booking: here the payment is set FAILED and the answer is 400, and the booking stays.
"""

import hashlib
import hmac
import logging

from django.conf import settings
from django.http import JsonResponse
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from seedpeer.models import Booking, Cart, CartItem, Payment

logger = logging.getLogger(__name__)


class ConfirmSerializer(serializers.Serializer):
    provider_payment_id = serializers.CharField(max_length=64)
    signature = serializers.CharField(max_length=128)


class CartItemSerializer(serializers.ModelSerializer):
    item_id = serializers.CharField(source="id")
    name = serializers.CharField(source="service.name")

    class Meta:
        model = CartItem
        fields = ["item_id", "service_id", "name", "quantity", "unit_price"]


class CartSerializer(serializers.ModelSerializer):
    cart_id = serializers.CharField(source="id")
    items = CartItemSerializer(many=True)

    class Meta:
        model = Cart
        fields = ["cart_id", "status", "items", "selected_date", "selected_time", "created_at", "updated_at"]


class PaymentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Payment
        fields = ["transaction_id", "cart_id", "status", "amount", "currency", "provider_order_id", "created_at",
                  "updated_at"]


class BookingSerializer(serializers.ModelSerializer):
    booking_id = serializers.CharField(source="id")
    transaction_id = serializers.CharField(source="payment_id")

    class Meta:
        model = Booking
        fields = ["booking_id", "cart_id", "transaction_id", "status", "selected_date", "selected_time", "total",
                  "created_at"]


def baseline(request):
    """Return JSON and do nothing else: the floor of this stack's cost."""
    return JsonResponse({"status": "ok"})


class ConfirmPaymentView(APIView):
    def post(self, request, transaction_id):
        body = ConfirmSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            payment = Payment.objects.get(transaction_id=transaction_id, user=request.user)
        except Payment.DoesNotExist:
            return Response({"error": "Not found", "detail": "No such payment."}, status=404)
        if payment.status != "PENDING":
            return Response({"error": "Conflict", "detail": f"The payment is {payment.status}."}, status=409)
        cart = payment.cart
        booking = self._create_booking_instantly(cart, payment, body.validated_data["provider_payment_id"])
        if not self._signature_is_valid(payment, **body.validated_data):
            payment.status = "FAILED"
            payment.save()
            return Response({"error": "Bad request", "detail": "The signature does not match."}, status=400)
        return Response({"payment": PaymentSerializer(payment).data, "booking": BookingSerializer(booking).data,
                         "cart": CartSerializer(cart).data})

    def _create_booking_instantly(self, cart, payment, provider_payment_id):
        # Create booking instantly (OPTIMISTIC - assume payment is good)
        booking = Booking.objects.create(cart=cart, payment=payment, user=cart.user, total=payment.amount,
                                         selected_date=cart.selected_date, selected_time=cart.selected_time,
                                         status="CONFIRMED")
        # INSTANT: Update payment status optimistically for speed
        payment.status = "SUCCESS"
        payment.provider_payment_id = provider_payment_id
        payment.save()
        # POST-BOOKING CLEANUP: Clear the cart after successful booking
        self._clean_cart_after_booking(cart)
        return booking

    def _clean_cart_after_booking(self, cart):
        """Clean cart after successful booking to prevent reuse"""
        try:
            cart.status = cart.StatusChoices.CONVERTED
            cart.save()
            logger.info(f"CART CLEANED: {cart.id} status={cart.status}")
        except Exception as e:
            logger.error(f"CART CLEANUP ERROR: {e}")
            # Don't fail the booking for cleanup errors

    def _signature_is_valid(self, payment, provider_payment_id, signature):
        signed = f"{payment.provider_order_id}|{provider_payment_id}".encode()
        expected = hmac.new(settings.GATEWAY_SECRET.encode(), signed, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)
