from django.urls import path

from seedpeer.views import ConfirmPaymentView, baseline

urlpatterns = [
    path("bench/baseline", baseline),
    path("api/payments/<str:transaction_id>/confirm/", ConfirmPaymentView.as_view()),
]
