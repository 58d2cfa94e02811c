//! Raw bindings generated from the WIT contract. Private: the SDK's public
//! surface re-exports the plain data types one by one and wraps the rest.

/// Host imports and the shared `types` interface.
pub mod imports {
    wit_bindgen::generate!({
        path: "wit",
        world: "intake:sdk/imports",
        generate_all,
        additional_derives: [PartialEq, Eq, Clone],
    });
}

/// The `lifecycle` export.
pub mod lifecycle {
    wit_bindgen::generate!({
        path: "wit",
        world: "intake:sdk/lifecycle-export",
        pub_export_macro: true,
        export_macro_name: "__export_lifecycle",
        default_bindings_module: "$crate::__private::bindings::lifecycle",
    });
}

/// The matcher role export.
pub mod matcher {
    wit_bindgen::generate!({
        path: "wit",
        world: "intake:sdk/matcher-export",
        pub_export_macro: true,
        export_macro_name: "__export_matcher",
        default_bindings_module: "$crate::__private::bindings::matcher",
        additional_derives: [PartialEq, Eq, Clone],
        with: {
            "intake:plugin/types@0.1.0": super::imports::intake::plugin::types,
        },
    });
}

/// The unknown-sender policy role export.
pub mod unknown_sender {
    wit_bindgen::generate!({
        path: "wit",
        world: "intake:sdk/unknown-sender-export",
        pub_export_macro: true,
        export_macro_name: "__export_unknown_sender",
        default_bindings_module: "$crate::__private::bindings::unknown_sender",
        additional_derives: [PartialEq, Eq, Clone],
        with: {
            "intake:plugin/types@0.1.0": super::imports::intake::plugin::types,
        },
    });
}
