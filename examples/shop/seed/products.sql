insert into products (sku, price_cents)
select 'SKU-' || lpad(g::text, 4, '0'), 100 + (g * 37) % 9900 from generate_series(1, 200) g;
