-- dicom-loader stage and Parquet file format, Snowflake dialect.
-- Rendered by `dicom-loader sql --dialect snowflake`. Do not edit by hand.

CREATE FILE FORMAT IF NOT EXISTS DICOM_LOADER_PARQUET TYPE = PARQUET;
CREATE STAGE IF NOT EXISTS "DICOM_LOADER_STAGE";
