-- pg2bq demo: a small shop. Tables only; seed.sql loads the rows.
CREATE SCHEMA shop;

CREATE TYPE shop.order_status AS ENUM ('new', 'paid', 'shipped', 'cancelled');
CREATE DOMAIN shop.email AS text CHECK (VALUE LIKE '%@%');

CREATE TABLE shop.customers (
    customer_id  bigint PRIMARY KEY,
    email        shop.email NOT NULL,
    full_name    text NOT NULL,
    country      char(2),
    vip          boolean NOT NULL DEFAULT false,
    signed_up_on date NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    preferences  jsonb
);

CREATE TABLE shop.products (
    sku         text PRIMARY KEY,
    title       varchar(200) NOT NULL,
    price       numeric(10, 2) NOT NULL,
    weight_kg   double precision,
    tags        text[],
    external_id uuid NOT NULL,
    thumbnail   bytea,
    listed_at   timestamp NOT NULL
);

CREATE TABLE shop.orders (
    order_id    integer PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES shop.customers ON UPDATE CASCADE,
    status      shop.order_status NOT NULL DEFAULT 'new',
    total       numeric(12, 2) NOT NULL,
    placed_at   timestamptz NOT NULL,
    ship_by     time,
    note        text
);

CREATE TABLE shop.order_lines (
    order_id   integer NOT NULL REFERENCES shop.orders ON UPDATE CASCADE ON DELETE CASCADE,
    line_no    smallint NOT NULL,
    sku        text NOT NULL REFERENCES shop.products ON UPDATE CASCADE,
    quantity   integer NOT NULL,
    unit_price numeric(10, 2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
