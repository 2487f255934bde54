--liquibase formatted sql

--changeset dave:4
create index items_name on items (name);

--changeset dave:5 runOnChange:true
create or replace view v as select * from items;
