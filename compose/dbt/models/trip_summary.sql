-- A first model: one row per day of the synthetic trips landed by the ingestor.
-- Expects an external table hive.raw.trips over s3a://raw/ingestor/ (JSON lines).
{{ config(materialized='view') }}

select
    date(from_iso8601_timestamp(pickup_at)) as trip_date,
    count(*) as trips,
    sum(passenger_count) as passengers,
    round(avg(trip_distance_km), 2) as avg_distance_km,
    round(sum(fare_amount), 2) as total_fares
from {{ source('raw', 'trips') }}
group by 1
