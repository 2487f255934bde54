create table customers (
    id serial primary key,
    email text not null unique,
    created_at timestamptz not null default now()
);

create table orders (
    id serial primary key,
    customer_id int not null references customers (id) on delete cascade,
    total_cents int not null check (total_cents >= 0),
    status text not null default 'open' check (status in ('open', 'paid', 'cancelled'))
);

\ir views.sql
