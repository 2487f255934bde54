insert into customers (email) select 'customer' || g || '@example.com' from generate_series(1, 50) g;
insert into orders (customer_id, total_cents, status)
    select 1 + (g % 50), 100 * g, case when g % 3 = 0 then 'paid' else 'open' end from generate_series(1, 200) g;
