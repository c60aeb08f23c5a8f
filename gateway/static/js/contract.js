// The try-on contract as the server defines it: limits, enums and defaults read once from the
// OpenAPI document the gateway serves (/openapi.json, generated from shared/contracts), so the
// page holds no copy of them.
import { api } from "./api.js";

let loaded = null;

/** {min, max, integer} of a numeric property, or null when the document has none. */
function range(prop) {
  if (!prop || (prop.type !== "integer" && prop.type !== "number")) return null;
  return { min: prop.minimum, max: prop.maximum, integer: prop.type === "integer" };
}

function enumOf(prop) {
  return prop && Array.isArray(prop.enum) ? prop.enum.map(String) : [];
}

/** Turn the OpenAPI document into what the page needs about a try-on. */
export function readContract(doc) {
  const schemas = (doc && doc.components && doc.components.schemas) || {};
  const job = (schemas.WeaveJobRequest && schemas.WeaveJobRequest.properties) || {};
  const create = (schemas.TryOnCreate && schemas.TryOnCreate.properties) || {};
  return {
    ranges: {
      steps: range(job.steps),
      guidance: range(job.guidance),
      seed: range(job.seed),
      num_samples: range(job.num_samples),
    },
    categories: enumOf(create.category),
    defaultCategory: create.category && create.category.default !== undefined ? String(create.category.default) : null,
    presets: enumOf(job.preset),
    variants: enumOf(job.variant),
    models: enumOf(job.model),
    photoTypes: enumOf(job.garment_photo_type),
    // per model: its presets' steps and licence; per CatVTON variant: the model it means
    modelInfo: (doc && doc["x-models"] && doc["x-models"].models) || {},
    variantModels: (doc && doc["x-models"] && doc["x-models"].variants) || {},
  };
}

/** The contract (fetched once; an empty one where the document can't be read: the server still checks). */
export function contract() {
  if (!loaded) {
    loaded = api.openapi().then(readContract, () => {
      loaded = null; // ask again next time
      return readContract(null);
    });
  }
  return loaded;
}
