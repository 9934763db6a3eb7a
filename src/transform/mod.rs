pub mod start_case;
