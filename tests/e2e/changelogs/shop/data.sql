--liquibase formatted sql

--changeset shop:6
insert into orders (id, customer_id, total) values (1, 1, 10.50), (2, 2, 99.00);

--changeset shop:7
create view order_totals as select customer_id, sum(total) as total from orders group by customer_id;

--changeset shop:8
update customers set email = lower(name) || '@example.com';
