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

/// Contract 0.2.0's `plugin-error`, shared by the 0.2.0 exports.
pub mod errors_v0_2 {
    wit_bindgen::generate!({
        path: "wit-v0.2",
        world: "intake:sdk-v0-2/errors",
        generate_all,
        additional_derives: [PartialEq, Eq, Clone],
    });
}

/// The `lifecycle` export, contract 0.2.0.
pub mod lifecycle_v0_2 {
    wit_bindgen::generate!({
        path: "wit-v0.2",
        world: "intake:sdk-v0-2/lifecycle-export-v0-2",
        pub_export_macro: true,
        export_macro_name: "__export_lifecycle_v0_2",
        default_bindings_module: "$crate::__private::bindings::lifecycle_v0_2",
        with: {
            "intake:plugin/errors@0.2.0": super::errors_v0_2::intake::plugin::errors,
        },
    });
}

/// The matcher role export, contract 0.2.0.
pub mod matcher_v0_2 {
    wit_bindgen::generate!({
        path: "wit-v0.2",
        world: "intake:sdk-v0-2/matcher-export-v0-2",
        pub_export_macro: true,
        export_macro_name: "__export_matcher_v0_2",
        default_bindings_module: "$crate::__private::bindings::matcher_v0_2",
        additional_derives: [PartialEq, Eq, Clone],
        with: {
            "intake:plugin/types@0.2.0": super::imports::intake::plugin::types,
            "intake:plugin/errors@0.2.0": super::errors_v0_2::intake::plugin::errors,
        },
    });
}

/// The unknown-sender policy role export, contract 0.2.0.
pub mod unknown_sender_v0_2 {
    wit_bindgen::generate!({
        path: "wit-v0.2",
        world: "intake:sdk-v0-2/unknown-sender-export-v0-2",
        pub_export_macro: true,
        export_macro_name: "__export_unknown_sender_v0_2",
        default_bindings_module: "$crate::__private::bindings::unknown_sender_v0_2",
        additional_derives: [PartialEq, Eq, Clone],
        with: {
            "intake:plugin/types@0.2.0": super::imports::intake::plugin::types,
            "intake:plugin/errors@0.2.0": super::errors_v0_2::intake::plugin::errors,
        },
    });
}
