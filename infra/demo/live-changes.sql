-- pg2bq demo: live changes while the pipeline runs, one transaction each.
-- New customers and an order.
BEGIN;
INSERT INTO shop.customers (customer_id, email, full_name, country, signed_up_on, preferences)
VALUES (1001, 'ada@example.com', 'Ada Lovelace', 'GB', date '2026-11-24', '{"newsletter": true}'),
       (1002, 'alan@example.com', 'Alan Turing', 'GB', date '2026-11-24', NULL);
INSERT INTO shop.orders (order_id, customer_id, total, placed_at, note)
VALUES (1001, 1001, 10.11, now(), 'first order');
INSERT INTO shop.order_lines VALUES (1001, 1, 'SKU-0003', 1, 10.11);
COMMIT;

-- Updates: a status change, a price change, a value set to NULL.
UPDATE shop.orders SET status = 'shipped', note = 'left at the door' WHERE order_id = 1001;
UPDATE shop.products SET price = price * 1.10, tags = tags || ARRAY['sale'] WHERE sku IN ('SKU-0001', 'SKU-0002');
UPDATE shop.customers SET preferences = NULL, vip = true WHERE customer_id = 7;

-- A primary key change: the product is renumbered (order lines follow by ON UPDATE CASCADE).
UPDATE shop.products SET sku = 'SKU-9999' WHERE sku = 'SKU-0010';
-- Another one on a bigint key, cascading to orders.
UPDATE shop.customers SET customer_id = 5000 WHERE customer_id = 200;

-- Deletes: an order and its lines (ON DELETE CASCADE), a customer without orders.
DELETE FROM shop.orders WHERE order_id = 17;
DELETE FROM shop.customers WHERE customer_id = 1002;

-- A bigger transaction touching many rows.
UPDATE shop.order_lines SET quantity = quantity + 1 WHERE order_id % 10 = 0;
