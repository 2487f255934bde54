create table accounts (id int primary key, balance_cents bigint not null check (balance_cents >= 0));
insert into accounts select g, 1000 from generate_series(1, 10) g;

create function transfer(from_id int, to_id int, cents bigint) returns void language sql as $$
    update accounts set balance_cents = balance_cents - cents where id = from_id;
    update accounts set balance_cents = balance_cents + cents where id = to_id;
$$;
