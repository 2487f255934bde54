-- Seed data; the product catalogue comes from an included file.
\ir seed/products.sql

insert into customers (email)
select 'customer' || g || '@example.com' from generate_series(1, 5000) g;

insert into orders (customer_id, product_id, quantity, ordered_at)
select 1 + (g::bigint * 7919) % 5000, 1 + (g::bigint * 104729) % 200, 1 + g % 5,
       timestamptz '2026-01-01' + make_interval(mins => g)
from generate_series(1, 50000) g;

analyze;
