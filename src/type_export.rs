//! Collecting the TypeScript declarations of a procedure's input and output
//! types with ts-rs. Below the router, which stores this exporter for each
//! procedure it registers; rendered into bindings by [`crate::typescript`].

/// Exports `T` and everything it depends on into `cfg.out_dir()`.
///
/// Unlike `TS::export_all`, a type without a file of its own (`void`, a
/// primitive, `Vec<User>`, `Option<User>`) is not an error: its dependencies
/// and type arguments are exported instead, so `Vec<User>` yields `User.ts`.
/// [`crate::Router::procedure`] stores this for each input and output type.
pub fn export_type<T: ts_rs::TS + 'static + ?Sized>(
    cfg: &ts_rs::Config,
) -> Result<(), ts_rs::ExportError> {
    struct Visit<'a> {
        cfg: &'a ts_rs::Config,
        result: Result<(), ts_rs::ExportError>,
    }
    impl ts_rs::TypeVisitor for Visit<'_> {
        fn visit<U: ts_rs::TS + 'static + ?Sized>(&mut self) {
            if self.result.is_ok() {
                self.result = export_type::<U>(self.cfg);
            }
        }
    }
    if T::output_path().is_some() {
        return T::export_all(cfg);
    }
    let mut visit = Visit {
        cfg,
        result: Ok(()),
    };
    T::visit_dependencies(&mut visit);
    T::visit_generics(&mut visit);
    visit.result
}
