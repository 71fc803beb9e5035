-- The SQL of one confirm (as the service issues it), for pgbench -M prepared.
-- Seeded payments TXNB00000000001.. are confirmed in order via bench_seq.
SELECT nextval('bench_seq') AS i \gset
BEGIN;
SELECT users.id AS uid FROM users JOIN api_tokens ON api_tokens.user_id = users.id WHERE api_tokens.token_hash = :tokenhash \gset
SELECT cart_id, status AS pstatus, transaction_id AS txn FROM payments WHERE transaction_id = 'TXNB' || lpad(:i::text, 11, '0') AND user_id = :uid \gset
SELECT status FROM carts WHERE id = :cart_id;
UPDATE carts SET status = 'CONVERTED', updated_at = now() FROM (SELECT id, status FROM carts WHERE id = :cart_id AND status IN ('ACTIVE') FOR UPDATE) AS old WHERE carts.id = old.id RETURNING old.id, old.status;
INSERT INTO transitions (entity, entity_id, from_state, to_state, trigger, actor, at, accepted) VALUES ('cart', :cart_id, 'ACTIVE', 'CONVERTED', 'convert', 'pgbench', now(), true);
UPDATE payments SET status = 'SUCCESS', provider_payment_id = 'pay_pgbench', updated_at = now() FROM (SELECT transaction_id, status FROM payments WHERE transaction_id = :txn AND status IN ('PENDING') FOR UPDATE) AS old WHERE payments.transaction_id = old.transaction_id RETURNING old.transaction_id, old.status;
INSERT INTO transitions (entity, entity_id, from_state, to_state, trigger, actor, at, accepted) VALUES ('payment', :txn, 'PENDING', 'SUCCESS', 'succeed', 'pgbench', now(), true);
UPDATE payments SET status = 'CANCELLED', updated_at = now() FROM (SELECT transaction_id, status FROM payments WHERE cart_id = :cart_id AND transaction_id != :txn AND status IN ('INITIATED', 'PENDING') FOR UPDATE) AS old WHERE payments.transaction_id = old.transaction_id RETURNING old.transaction_id, old.status;
SELECT id, user_id, status, selected_date, selected_time, created_at, updated_at FROM carts WHERE id = :cart_id;
INSERT INTO bookings (id, cart_id, transaction_id, user_id, status, selected_date, selected_time, total, created_at) VALUES (gen_random_uuid()::text, :cart_id, :txn, :uid, 'CONFIRMED', current_date + 30, '10:30', 2500.00, now());
SELECT cart_items.cart_id, cart_items.id, cart_items.service_id, services.name, cart_items.quantity, cart_items.unit_price FROM cart_items JOIN services ON services.id = cart_items.service_id WHERE cart_items.cart_id IN (:cart_id) ORDER BY cart_items.created_at, cart_items.id;
COMMIT;
