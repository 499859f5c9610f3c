-- pg2bq demo: the shop's starting rows.
INSERT INTO shop.customers (customer_id, email, full_name, country, vip, signed_up_on, created_at, preferences)
SELECT g,
       'customer' || g || '@example.com',
       'Customer ' || g,
       (ARRAY['DE', 'FR', 'US', 'JP', 'BR'])[1 + g % 5],
       g % 7 = 0,
       date '2020-01-01' + g * 3,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '37 minutes 12.345678 seconds',
       CASE WHEN g % 3 = 0 THEN NULL ELSE jsonb_build_object('newsletter', g % 2 = 0, 'lang', 'en', 'score', g * 1.5) END
FROM generate_series(1, 200) AS g;

INSERT INTO shop.products (sku, title, price, weight_kg, tags, external_id, thumbnail, listed_at)
SELECT 'SKU-' || lpad(g::text, 4, '0'),
       'Product ' || g || CASE WHEN g % 10 = 0 THEN ' – édition spéciale' ELSE '' END,
       round((g * 3.37)::numeric, 2),
       CASE WHEN g % 4 = 0 THEN NULL ELSE g / 7.0 END,
       ARRAY['tag' || g % 3, 'tag' || g % 5],
       md5('product' || g)::uuid,
       decode(md5('thumb' || g), 'hex'),
       timestamp '2023-06-01 08:00:00' + g * interval '1 day 1.5 seconds'
FROM generate_series(1, 50) AS g;

INSERT INTO shop.orders (order_id, customer_id, status, total, placed_at, ship_by, note)
SELECT g,
       1 + g % 200,
       (ARRAY['new', 'paid', 'shipped']::shop.order_status[])[1 + g % 3],
       0,
       timestamptz '2024-03-01 12:00:00+00' + g * interval '11 minutes',
       time '08:00' + (g % 10) * interval '1 hour',
       CASE WHEN g % 5 = 0 THEN 'gift wrap, please' END
FROM generate_series(1, 400) AS g;

INSERT INTO shop.order_lines (order_id, line_no, sku, quantity, unit_price)
SELECT o, l, 'SKU-' || lpad((1 + (o * l) % 50)::text, 4, '0'), 1 + (o + l) % 4, round(((1 + (o * l) % 50) * 3.37)::numeric, 2)
FROM generate_series(1, 400) AS o, generate_series(1, 3) AS l
WHERE l <= 1 + o % 3;

UPDATE shop.orders o
SET total = (SELECT sum(quantity * unit_price) FROM shop.order_lines l WHERE l.order_id = o.order_id);
