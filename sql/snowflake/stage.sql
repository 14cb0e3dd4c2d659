-- dicom-loader stage and Parquet file format, Snowflake dialect.
-- Rendered by `dicom-loader sql --dialect snowflake`. Do not edit by hand.

CREATE OR REPLACE FILE FORMAT DICOM_LOADER_PARQUET TYPE = PARQUET USE_LOGICAL_TYPE = TRUE USE_VECTORIZED_SCANNER = TRUE;
CREATE STAGE IF NOT EXISTS "DICOM_LOADER_STAGE";
