//! Where an instance's Pixel Data value lies in its file, learned by the ingest scan, so frames
//! can be read straight from the stored file without parsing it again.

use serde::{Deserialize, Serialize};

/// One item of encapsulated Pixel Data: where its value starts in the file and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fragment {
    /// Offset in the file of the item's first value byte (its item header is the 8 bytes before).
    pub offset: u64,
    /// Length of the item's value in bytes.
    pub length: u32,
}

/// Where the root Pixel Data (7FE0,0010) value lies in a Part 10 file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PixelLocation {
    /// Native (uncompressed) pixel data: one contiguous value.
    Native {
        /// Offset in the file of the first pixel byte.
        offset: u64,
        /// Length of the value in bytes.
        length: u64,
    },
    /// Encapsulated (compressed) pixel data.
    Encapsulated {
        /// The Basic Offset Table item (the first item; its value may be empty).
        offset_table: Fragment,
        /// The fragments that follow it, in file order.
        fragments: Vec<Fragment>,
    },
}

impl PixelLocation {
    /// Split the items of an encapsulated Pixel Data value into its offset table and fragments.
    /// A value without any item gets an empty offset table at offset 0 and no fragments.
    pub(crate) fn encapsulated(mut items: Vec<Fragment>) -> Self {
        let offset_table = if items.is_empty() { Fragment { offset: 0, length: 0 } } else { items.remove(0) };
        PixelLocation::Encapsulated { offset_table, fragments: items }
    }
}
