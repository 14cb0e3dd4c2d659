-- dicom-loader warehouse model, snowflake dialect.
-- Rendered from loader/core/model.py by `dicom-loader sql --dialect snowflake`. Do not edit by hand.

-- dicom_raw: key (file_path), load mode entity
CREATE TABLE IF NOT EXISTS dicom_raw (
    file_path VARCHAR,
    metadata VARIANT,
    metadata_vr VARIANT,
    ingested_at TIMESTAMP_NTZ,
    sop_instance_uid VARCHAR,
    file_size_bytes NUMBER(38,0),
    header_bytes NUMBER(38,0),
    transfer_syntax_uid VARCHAR,
    deleted_at TIMESTAMP_NTZ,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
) CHANGE_TRACKING = TRUE;

-- dicom_ingestion_errors: key (file_path, error_category, tag), load mode object_errors
CREATE TABLE IF NOT EXISTS dicom_ingestion_errors (
    file_path VARCHAR,
    error_category VARCHAR,
    error_message VARCHAR,
    tag VARCHAR,
    detected_at TIMESTAMP_NTZ,
    bytes_read NUMBER(38,0),
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_load_history: key (run_id, shard_id), load mode history
CREATE TABLE IF NOT EXISTS dicom_load_history (
    run_id VARCHAR,
    shard_id VARCHAR,
    status VARCHAR,
    listed NUMBER(38,0),
    parsed NUMBER(38,0),
    duplicates NUMBER(38,0),
    errors NUMBER(38,0),
    error_files NUMBER(38,0),
    rows_per_table VARIANT,
    bytes_listed NUMBER(38,0),
    bytes_read NUMBER(38,0),
    read_requests NUMBER(38,0),
    seconds FLOAT,
    started_at TIMESTAMP_NTZ,
    finished_at TIMESTAMP_NTZ,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_patient: key (patient_key), load mode entity
CREATE TABLE IF NOT EXISTS dicom_patient (
    patient_key NUMBER(20,0),
    patient_id VARCHAR, -- PHI
    issuer_of_patient_id VARCHAR,
    patient_name VARCHAR, -- PHI
    patient_sex VARCHAR,
    patient_birth_date DATE, -- PHI
    patient_age VARCHAR,
    other_patient_ids ARRAY, -- PHI
    other_patient_names ARRAY, -- PHI
    comments VARCHAR,
    source_system VARCHAR,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_study: key (study_key), load mode entity
CREATE TABLE IF NOT EXISTS dicom_study (
    study_key NUMBER(20,0),
    study_instance_uid VARCHAR,
    patient_key NUMBER(20,0),
    accession_number VARCHAR,
    study_id VARCHAR,
    study_datetime TIMESTAMP_NTZ,
    study_date DATE,
    study_time TIME,
    study_description VARCHAR,
    referring_physician VARCHAR, -- PHI
    admitting_diagnosis VARCHAR,
    number_of_series NUMBER(38,0),
    number_of_instances NUMBER(38,0),
    modalities_in_study ARRAY,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_series: key (series_key), load mode entity
CREATE TABLE IF NOT EXISTS dicom_series (
    series_key NUMBER(20,0),
    series_instance_uid VARCHAR,
    study_key NUMBER(20,0),
    series_number NUMBER(38,0),
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
    number_of_instances NUMBER(38,0),
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_instance: key (instance_key), load mode entity
CREATE TABLE IF NOT EXISTS dicom_instance (
    instance_key NUMBER(20,0),
    sop_instance_uid VARCHAR,
    series_key NUMBER(20,0),
    sop_class_uid VARCHAR,
    instance_number NUMBER(38,0),
    image_type ARRAY,
    acquisition_datetime TIMESTAMP_NTZ,
    content_datetime TIMESTAMP_NTZ,
    acquisition_date DATE,
    acquisition_time TIME,
    content_date DATE,
    content_time TIME,
    number_of_frames NUMBER(38,0),
    specific_character_set VARCHAR,
    burned_in_annotation VARCHAR,
    presentation_intent VARCHAR,
    file_path VARCHAR,
    file_size_bytes NUMBER(38,0),
    transfer_syntax_uid VARCHAR,
    deleted_at TIMESTAMP_NTZ,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_frame: key (frame_key), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_frame (
    frame_key NUMBER(20,0),
    instance_key NUMBER(20,0),
    sop_instance_uid VARCHAR,
    frame_number NUMBER(38,0),
    frame_content_datetime TIMESTAMP_NTZ,
    image_position_patient ARRAY,
    image_orientation_patient ARRAY,
    slice_location FLOAT,
    temporal_position_index NUMBER(38,0),
    cardiac_cycle_position FLOAT,
    frame_offset NUMBER(38,0),
    frame_length NUMBER(38,0),
    frame_offset_source VARCHAR,
    frame_offset_missing VARCHAR,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_equipment: key (series_key), load mode entity
CREATE TABLE IF NOT EXISTS dicom_equipment (
    series_key NUMBER(20,0),
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
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_image_pixel: key (instance_key), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_image_pixel (
    instance_key NUMBER(20,0),
    image_rows NUMBER(38,0),
    image_columns NUMBER(38,0),
    number_of_frames NUMBER(38,0),
    samples_per_pixel NUMBER(38,0),
    photometric_interpretation VARCHAR,
    bits_allocated NUMBER(38,0),
    bits_stored NUMBER(38,0),
    high_bit NUMBER(38,0),
    pixel_representation NUMBER(38,0),
    planar_configuration NUMBER(38,0),
    rescale_intercept FLOAT,
    rescale_slope FLOAT,
    window_center ARRAY,
    window_width ARRAY,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_image_plane: key (instance_key, frame_number), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_image_plane (
    instance_key NUMBER(20,0),
    frame_key NUMBER(20,0),
    frame_number NUMBER(38,0),
    pixel_spacing ARRAY,
    slice_thickness FLOAT,
    image_position_patient ARRAY,
    image_orientation_patient ARRAY,
    spacing_between_slices FLOAT,
    position_reference_indicator VARCHAR,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_procedure_step: key (procedure_step_key), load mode entity
CREATE TABLE IF NOT EXISTS dicom_procedure_step (
    procedure_step_key NUMBER(20,0),
    study_key NUMBER(20,0),
    requested_procedure_id VARCHAR,
    requested_procedure_description VARCHAR,
    requested_procedure_code_seq VARIANT,
    performed_procedure_step_id VARCHAR,
    performed_procedure_description VARCHAR,
    performed_procedure_type VARCHAR,
    performed_procedure_code_seq VARIANT,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_dose_summary: key (series_key), load mode entity
CREATE TABLE IF NOT EXISTS dicom_dose_summary (
    series_key NUMBER(20,0),
    study_key NUMBER(20,0),
    ctdi_vol FLOAT,
    dose_length_product FLOAT,
    exposure_time FLOAT,
    kvp FLOAT,
    xray_tube_current FLOAT,
    exposure FLOAT,
    acquisition_protocol VARCHAR,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_segmentation_metadata: key (instance_key, segment_number), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_segmentation_metadata (
    instance_key NUMBER(20,0),
    referenced_series_key NUMBER(20,0),
    segment_number NUMBER(38,0),
    segment_label VARCHAR,
    segment_description VARCHAR,
    segmentation_type VARCHAR,
    segmentation_fractional_type VARCHAR,
    recommended_display_grayscale VARIANT,
    anatomic_region_code_seq VARIANT,
    property_category_code_seq VARIANT,
    property_type_code_seq VARIANT,
    algorithm_type VARCHAR,
    algorithm_name VARCHAR,
    tracking_id VARCHAR,
    tracking_uid VARCHAR,
    source_instance_keys ARRAY,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_structured_report_header: key (instance_key), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_structured_report_header (
    instance_key NUMBER(20,0),
    completion_flag VARCHAR,
    verification_flag VARCHAR,
    document_title VARCHAR,
    coding_scheme_identification VARIANT,
    referenced_instance_keys ARRAY,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_sr_content: key (instance_key, content_path), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_sr_content (
    instance_key NUMBER(20,0),
    content_path VARCHAR,
    parent_path VARCHAR,
    depth NUMBER(38,0),
    relationship_type VARCHAR,
    value_type VARCHAR,
    concept_code_value VARCHAR,
    concept_code_scheme VARCHAR,
    concept_code_meaning VARCHAR,
    template_id VARCHAR,
    observation_uid VARCHAR,
    text_value VARCHAR, -- PHI
    code_code_value VARCHAR,
    code_code_scheme VARCHAR,
    code_code_meaning VARCHAR,
    numeric_value FLOAT,
    unit_code_value VARCHAR,
    unit_code_scheme VARCHAR,
    unit_code_meaning VARCHAR,
    numeric_qualifier_code_value VARCHAR,
    numeric_qualifier_code_scheme VARCHAR,
    numeric_qualifier_code_meaning VARCHAR,
    date_value DATE,
    time_value TIME,
    datetime_value TIMESTAMP_NTZ,
    person_name VARCHAR, -- PHI
    uid_value VARCHAR,
    referenced_sop_class_uid VARCHAR,
    referenced_sop_instance_uid VARCHAR,
    referenced_instance_key NUMBER(20,0),
    referenced_frame_numbers ARRAY,
    referenced_segment_numbers ARRAY,
    graphic_type VARCHAR,
    graphic_data ARRAY,
    referenced_frame_of_reference_uid VARCHAR,
    referenced_content_path VARCHAR,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_sr_measurement_group: key (instance_key, group_path), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_sr_measurement_group (
    instance_key NUMBER(20,0),
    group_path VARCHAR,
    tracking_identifier VARCHAR,
    tracking_uid VARCHAR,
    finding_category_code_value VARCHAR,
    finding_category_code_scheme VARCHAR,
    finding_category_code_meaning VARCHAR,
    finding_code_value VARCHAR,
    finding_code_scheme VARCHAR,
    finding_code_meaning VARCHAR,
    finding_site_code_value VARCHAR,
    finding_site_code_scheme VARCHAR,
    finding_site_code_meaning VARCHAR,
    method_code_value VARCHAR,
    method_code_scheme VARCHAR,
    method_code_meaning VARCHAR,
    activity_session VARCHAR,
    time_point VARCHAR,
    roi_reference_type VARCHAR,
    referenced_segmentation_uid VARCHAR,
    referenced_segmentation_key NUMBER(20,0),
    referenced_segment_number NUMBER(38,0),
    source_series_uid VARCHAR,
    source_series_key NUMBER(20,0),
    region_graphic_type VARCHAR,
    region_instance_key NUMBER(20,0),
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_sr_measurement: key (instance_key, measurement_path), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_sr_measurement (
    instance_key NUMBER(20,0),
    measurement_path VARCHAR,
    group_path VARCHAR,
    concept_code_value VARCHAR,
    concept_code_scheme VARCHAR,
    concept_code_meaning VARCHAR,
    numeric_value FLOAT,
    unit_code_value VARCHAR,
    unit_code_scheme VARCHAR,
    unit_code_meaning VARCHAR,
    numeric_qualifier_code_value VARCHAR,
    numeric_qualifier_code_scheme VARCHAR,
    numeric_qualifier_code_meaning VARCHAR,
    derivation_code_value VARCHAR,
    derivation_code_scheme VARCHAR,
    derivation_code_meaning VARCHAR,
    method_code_value VARCHAR,
    method_code_scheme VARCHAR,
    method_code_meaning VARCHAR,
    finding_site_code_value VARCHAR,
    finding_site_code_scheme VARCHAR,
    finding_site_code_meaning VARCHAR,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_sr_qualitative_evaluation: key (instance_key, evaluation_path), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_sr_qualitative_evaluation (
    instance_key NUMBER(20,0),
    evaluation_path VARCHAR,
    group_path VARCHAR,
    concept_code_value VARCHAR,
    concept_code_scheme VARCHAR,
    concept_code_meaning VARCHAR,
    value_code_value VARCHAR,
    value_code_scheme VARCHAR,
    value_code_meaning VARCHAR,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_rt_roi: key (instance_key, roi_number), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_rt_roi (
    instance_key NUMBER(20,0),
    roi_number NUMBER(38,0),
    roi_name VARCHAR,
    roi_description VARCHAR,
    roi_generation_algorithm VARCHAR,
    referenced_frame_of_reference_uid VARCHAR,
    interpreted_type VARCHAR,
    observation_label VARCHAR,
    referenced_series_keys ARRAY,
    contour_count NUMBER(38,0),
    contour_geometric_types ARRAY,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_dose_event: key (instance_key, event_path), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_dose_event (
    instance_key NUMBER(20,0),
    event_path VARCHAR,
    event_kind VARCHAR,
    irradiation_event_uid VARCHAR,
    event_datetime TIMESTAMP_NTZ,
    acquisition_protocol VARCHAR,
    target_region_code_value VARCHAR,
    target_region_code_scheme VARCHAR,
    target_region_code_meaning VARCHAR,
    ct_acquisition_type VARCHAR,
    ctdi_vol FLOAT,
    dlp FLOAT,
    phantom_type VARCHAR,
    scanning_length FLOAT,
    exposure_time FLOAT,
    pitch_factor FLOAT,
    kvp FLOAT,
    tube_current FLOAT,
    irradiation_event_type VARCHAR,
    acquisition_plane VARCHAR,
    dose_area_product FLOAT,
    dose_rp FLOAT,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_file_location: key (location_key), load mode entity
CREATE TABLE IF NOT EXISTS dicom_file_location (
    location_key NUMBER(20,0),
    instance_key NUMBER(20,0),
    storage_uri VARCHAR,
    storage_provider VARCHAR,
    storage_container VARCHAR,
    object_key VARCHAR,
    transfer_syntax_uid VARCHAR,
    checksum VARCHAR,
    ingestion_source VARCHAR,
    header_bytes NUMBER(38,0),
    pixel_data_offset NUMBER(38,0),
    pixel_data_length NUMBER(38,0),
    file_size_bytes NUMBER(38,0),
    modified_at TIMESTAMP_NTZ,
    deleted_at TIMESTAMP_NTZ,
    _shard_id VARCHAR,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_element: key (element_key), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_element (
    element_key NUMBER(20,0),
    instance_key NUMBER(20,0),
    frame_number NUMBER(38,0),
    tag_group NUMBER(38,0),
    tag_element NUMBER(38,0),
    tag_hex VARCHAR,
    name VARCHAR,
    vr VARCHAR,
    vm NUMBER(38,0),
    value_string VARCHAR,
    value_number FLOAT,
    value_datetime TIMESTAMP_NTZ,
    value_binary_ref VARCHAR,
    is_private BOOLEAN,
    private_creator VARCHAR,
    sequence_item_key NUMBER(20,0),
    sequence_path VARCHAR,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- dicom_sequence_item: key (sequence_item_key), load mode instance_child
CREATE TABLE IF NOT EXISTS dicom_sequence_item (
    sequence_item_key NUMBER(20,0),
    instance_key NUMBER(20,0),
    parent_element_key NUMBER(20,0),
    item_index NUMBER(38,0),
    sequence_path VARCHAR,
    _source_order VARCHAR,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- image_embedding: key (embedding_key), load mode empty
CREATE TABLE IF NOT EXISTS image_embedding (
    embedding_key NUMBER(20,0),
    instance_key NUMBER(20,0),
    frame_key NUMBER(20,0),
    model_key NUMBER(20,0),
    embedding ARRAY,
    created_at TIMESTAMP_NTZ,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- embedding_model: key (model_key), load mode empty
CREATE TABLE IF NOT EXISTS embedding_model (
    model_key NUMBER(20,0),
    model_name VARCHAR,
    model_version VARCHAR,
    dimensions NUMBER(38,0),
    modality_scope ARRAY,
    parameters VARIANT,
    created_at TIMESTAMP_NTZ,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);

-- embedding_evaluation: key (evaluation_key), load mode empty
CREATE TABLE IF NOT EXISTS embedding_evaluation (
    evaluation_key NUMBER(20,0),
    model_key NUMBER(20,0),
    dataset_name VARCHAR,
    metric_name VARCHAR,
    metric_value FLOAT,
    details VARIANT,
    evaluated_at TIMESTAMP_NTZ,
    _run_id VARCHAR,
    _loaded_at TIMESTAMP_NTZ
);
