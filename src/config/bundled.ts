// Config files shipped inside dexrl (embedded in the compiled binary), addressable by name.
import seed from "../../configs/libero_spatial_ppo_dexbotic_pi0.yaml" with { type: "text" };
import sftRecipe from "../../configs/sft_libero_spatial.yaml" with { type: "text" };
import ppoRecipe from "../../configs/ppo_libero_spatial_fewshot.yaml" with { type: "text" };

/** The defaults every config is laid over: the seed's PPO config. */
export const DEFAULT_CONFIG = "libero_spatial_ppo_dexbotic_pi0";

export const bundledConfigs: Record<string, string> = {
  [DEFAULT_CONFIG]: seed,
  sft_libero_spatial: sftRecipe,
  ppo_libero_spatial_fewshot: ppoRecipe,
};
