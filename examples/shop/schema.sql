-- A small shop: customers, products and orders.
create table customers (
    id bigint generated always as identity primary key,
    email text not null unique,
    created_at timestamptz not null default now()
);

create table products (
    id bigint generated always as identity primary key,
    sku text not null unique,
    price_cents integer not null check (price_cents >= 0)
);

create table orders (
    id bigint generated always as identity primary key,
    customer_id bigint not null references customers,
    product_id bigint not null references products,
    quantity integer not null check (quantity > 0),
    ordered_at timestamptz not null
);
create index orders_customer on orders (customer_id);
