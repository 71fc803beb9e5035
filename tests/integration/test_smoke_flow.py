from tests.builders import confirm, make_cart, make_payment, register


def test_a_customer_pays_for_a_cart_and_gets_one_confirmed_booking(app, client):
    customer = register(client)
    cart = make_cart(app, client, customer, items=2)
    payment = make_payment(app, client, customer, cart["cart_id"])

    response = confirm(app, client, customer, payment)

    assert response.status_code == 200, response.json
    assert response.json["payment"]["status"] == "SUCCESS"
    assert response.json["booking"]["status"] == "CONFIRMED"
    assert response.json["cart"]["status"] == "CONVERTED"
    assert response.json["booking"]["total"] == "5000.00"
    bookings = client.get("/api/bookings/", headers=customer["headers"]).json
    assert [b["booking_id"] for b in bookings] == [response.json["booking"]["booking_id"]]
