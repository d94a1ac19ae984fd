//! Rendering a report: terminal tables, CSV files, one self-contained HTML page.

pub mod csv;
pub mod html;
pub mod table;
