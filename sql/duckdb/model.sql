-- dicom-loader warehouse model, duckdb dialect.
-- Rendered from loader/model.py by `dicom-loader sql --dialect duckdb`. Do not edit by hand.

-- dicom_raw: key (file_path), load mode entity
CREATE TABLE IF NOT EXISTS dicom_raw (
    file_path VARCHAR,
    metadata JSON USING COMPRESSION zstd,
    metadata_vr JSON USING COMPRESSION zstd,
    ingested_at TIMESTAMP,
    sop_instance_uid VARCHAR,
    file_size_bytes BIGINT,
    header_bytes BIGINT,
    transfer_syntax_uid VARCHAR,
    deleted_at TIMESTAMP,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- dicom_ingestion_errors: key (file_path, error_category, tag), load mode object_errors
CREATE TABLE IF NOT EXISTS dicom_ingestion_errors (
    file_path VARCHAR,
    error_category VARCHAR,
    error_message VARCHAR,
    tag VARCHAR,
    detected_at TIMESTAMP,
    bytes_read BIGINT,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- dicom_load_history: key (run_id, shard_id), load mode history
CREATE TABLE IF NOT EXISTS dicom_load_history (
    run_id VARCHAR,
    shard_id VARCHAR,
    status VARCHAR,
    listed BIGINT,
    parsed BIGINT,
    duplicates BIGINT,
    errors BIGINT,
    error_files BIGINT,
    rows_per_table JSON USING COMPRESSION zstd,
    bytes_listed BIGINT,
    bytes_read BIGINT,
    read_requests BIGINT,
    seconds DOUBLE,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- dicom_patient: key (patient_key), load mode entity
CREATE TABLE IF NOT EXISTS dicom_patient (
    patient_key UBIGINT,
    patient_id VARCHAR, -- PHI
    issuer_of_patient_id VARCHAR,
    patient_name VARCHAR, -- PHI
    patient_sex VARCHAR,
    patient_birth_date DATE, -- PHI
    patient_age VARCHAR,
    other_patient_ids VARCHAR[], -- PHI
    other_patient_names VARCHAR[], -- PHI
    comments VARCHAR,
    source_system VARCHAR,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- dicom_study: key (study_key), load mode entity
CREATE TABLE IF NOT EXISTS dicom_study (
    study_key UBIGINT,
    study_instance_uid VARCHAR,
    patient_key UBIGINT,
    accession_number VARCHAR,
    study_id VARCHAR,
    study_datetime TIMESTAMP,
    study_date DATE,
    study_time TIME,
    study_description VARCHAR,
    referring_physician VARCHAR, -- PHI
    admitting_diagnosis VARCHAR,
    number_of_series BIGINT,
    number_of_instances BIGINT,
    modalities_in_study VARCHAR[],
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- dicom_series: key (series_key), load mode entity
CREATE TABLE IF NOT EXISTS dicom_series (
    series_key UBIGINT,
    series_instance_uid VARCHAR,
    study_key UBIGINT,
    series_number BIGINT,
    modality VARCHAR,
    body_part_examined VARCHAR,
    laterality VARCHAR,
    series_description VARCHAR,
    frame_of_reference_uid VARCHAR,
    patient_position VARCHAR,
    performed_station_name VARCHAR,
    performed_location VARCHAR,
    series_date DATE,
    series_time TIME,
    protocol_name VARCHAR,
    number_of_instances BIGINT,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- dicom_instance: key (instance_key), load mode entity
CREATE TABLE IF NOT EXISTS dicom_instance (
    instance_key UBIGINT,
    sop_instance_uid VARCHAR,
    series_key UBIGINT,
    sop_class_uid VARCHAR,
    instance_number BIGINT,
    image_type VARCHAR[],
    acquisition_datetime TIMESTAMP,
    content_datetime TIMESTAMP,
    acquisition_date DATE,
    acquisition_time TIME,
    content_date DATE,
    content_time TIME,
    number_of_frames BIGINT,
    specific_character_set VARCHAR,
    burned_in_annotation VARCHAR,
    presentation_intent VARCHAR,
    file_path VARCHAR,
    file_size_bytes BIGINT,
    transfer_syntax_uid VARCHAR,
    deleted_at TIMESTAMP,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- dicom_frame: key (frame_key), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_frame (
    frame_key UBIGINT,
    instance_key UBIGINT,
    sop_instance_uid VARCHAR,
    frame_number BIGINT,
    frame_content_datetime TIMESTAMP,
    image_position_patient DOUBLE[],
    image_orientation_patient DOUBLE[],
    slice_location DOUBLE,
    temporal_position_index BIGINT,
    cardiac_cycle_position DOUBLE,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- dicom_equipment: key (series_key), load mode entity
CREATE TABLE IF NOT EXISTS dicom_equipment (
    series_key UBIGINT,
    manufacturer VARCHAR,
    manufacturer_model_name VARCHAR,
    device_serial_number VARCHAR,
    software_versions VARCHAR,
    institution_name VARCHAR,
    institution_address VARCHAR,
    station_name VARCHAR,
    institutional_dept_name VARCHAR,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- dicom_image_pixel: key (instance_key), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_image_pixel (
    instance_key UBIGINT,
    image_rows BIGINT,
    image_columns BIGINT,
    number_of_frames BIGINT,
    samples_per_pixel BIGINT,
    photometric_interpretation VARCHAR,
    bits_allocated BIGINT,
    bits_stored BIGINT,
    high_bit BIGINT,
    pixel_representation BIGINT,
    planar_configuration BIGINT,
    rescale_intercept DOUBLE,
    rescale_slope DOUBLE,
    window_center DOUBLE[],
    window_width DOUBLE[],
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- dicom_image_plane: key (instance_key, frame_number), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_image_plane (
    instance_key UBIGINT,
    frame_key UBIGINT,
    frame_number BIGINT,
    pixel_spacing DOUBLE[],
    slice_thickness DOUBLE,
    image_position_patient DOUBLE[],
    image_orientation_patient DOUBLE[],
    spacing_between_slices DOUBLE,
    position_reference_indicator VARCHAR,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- dicom_procedure_step: key (procedure_step_key), load mode entity
CREATE TABLE IF NOT EXISTS dicom_procedure_step (
    procedure_step_key UBIGINT,
    study_key UBIGINT,
    requested_procedure_id VARCHAR,
    requested_procedure_description VARCHAR,
    requested_procedure_code_seq JSON USING COMPRESSION zstd,
    performed_procedure_step_id VARCHAR,
    performed_procedure_description VARCHAR,
    performed_procedure_type VARCHAR,
    performed_procedure_code_seq JSON USING COMPRESSION zstd,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- dicom_dose_summary: key (series_key), load mode entity
CREATE TABLE IF NOT EXISTS dicom_dose_summary (
    series_key UBIGINT,
    study_key UBIGINT,
    ctdi_vol DOUBLE,
    dose_length_product DOUBLE,
    exposure_time DOUBLE,
    kvp DOUBLE,
    xray_tube_current DOUBLE,
    exposure DOUBLE,
    acquisition_protocol VARCHAR,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- dicom_segmentation_metadata: key (instance_key, segment_number), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_segmentation_metadata (
    instance_key UBIGINT,
    referenced_series_key UBIGINT,
    segment_number BIGINT,
    segment_label VARCHAR,
    segment_description VARCHAR,
    segmentation_type VARCHAR,
    segmentation_fractional_type VARCHAR,
    recommended_display_grayscale JSON USING COMPRESSION zstd,
    anatomic_region_code_seq JSON USING COMPRESSION zstd,
    property_category_code_seq JSON USING COMPRESSION zstd,
    property_type_code_seq JSON USING COMPRESSION zstd,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- dicom_structured_report_header: key (instance_key), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_structured_report_header (
    instance_key UBIGINT,
    completion_flag VARCHAR,
    verification_flag VARCHAR,
    document_title VARCHAR,
    coding_scheme_identification JSON USING COMPRESSION zstd,
    referenced_instance_keys UBIGINT[],
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- dicom_file_location: key (location_key), load mode entity
CREATE TABLE IF NOT EXISTS dicom_file_location (
    location_key UBIGINT,
    instance_key UBIGINT,
    storage_uri VARCHAR,
    storage_provider VARCHAR,
    storage_container VARCHAR,
    object_key VARCHAR,
    transfer_syntax_uid VARCHAR,
    checksum VARCHAR,
    ingestion_source VARCHAR,
    header_bytes BIGINT,
    pixel_data_offset BIGINT,
    pixel_data_length BIGINT,
    file_size_bytes BIGINT,
    modified_at TIMESTAMP,
    deleted_at TIMESTAMP,
    _shard_id VARCHAR,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- dicom_element: key (element_key), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_element (
    element_key UBIGINT,
    instance_key UBIGINT,
    frame_number BIGINT,
    tag_group BIGINT,
    tag_element BIGINT,
    tag_hex VARCHAR,
    name VARCHAR,
    vr VARCHAR,
    vm BIGINT,
    value_string VARCHAR,
    value_number DOUBLE,
    value_datetime TIMESTAMP,
    value_binary_ref VARCHAR,
    is_private BOOLEAN,
    private_creator VARCHAR,
    sequence_item_key UBIGINT,
    sequence_path VARCHAR,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- dicom_sequence_item: key (sequence_item_key), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_sequence_item (
    sequence_item_key UBIGINT,
    instance_key UBIGINT,
    parent_element_key UBIGINT,
    item_index BIGINT,
    sequence_path VARCHAR,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- image_embedding: key (embedding_key), load mode empty
CREATE TABLE IF NOT EXISTS image_embedding (
    embedding_key UBIGINT,
    instance_key UBIGINT,
    frame_key UBIGINT,
    model_key UBIGINT,
    embedding DOUBLE[],
    created_at TIMESTAMP,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- embedding_model: key (model_key), load mode empty
CREATE TABLE IF NOT EXISTS embedding_model (
    model_key UBIGINT,
    model_name VARCHAR,
    model_version VARCHAR,
    dimensions BIGINT,
    modality_scope VARCHAR[],
    parameters JSON USING COMPRESSION zstd,
    created_at TIMESTAMP,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);

-- embedding_evaluation: key (evaluation_key), load mode empty
CREATE TABLE IF NOT EXISTS embedding_evaluation (
    evaluation_key UBIGINT,
    model_key UBIGINT,
    dataset_name VARCHAR,
    metric_name VARCHAR,
    metric_value DOUBLE,
    details JSON USING COMPRESSION zstd,
    evaluated_at TIMESTAMP,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP
);
