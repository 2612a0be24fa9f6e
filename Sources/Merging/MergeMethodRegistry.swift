/// Every merge method, registered in one place, looked up by its recipe name.
public enum MergeMethodRegistry {
    public static let all: [any MergeMethod] = [
        LinearMerge(),
        TaskArithmeticFamily(name: "task_arithmetic", reference: "Ilharco et al. 2023, Editing models with task arithmetic, arXiv:2212.04089",
                             summary: "base + λ·Σ w_i (x_i − base)", consensus: .none, sparsification: .none, normalize: false, rescale: false),
        TaskArithmeticFamily(name: "ties", reference: "Yadav et al. 2023, TIES-Merging, arXiv:2306.01708",
                             summary: "trim to the top-density magnitudes, elect signs, disjoint mean", consensus: .signSum, sparsification: .magnitude,
                             normalize: true, rescale: false),
        TaskArithmeticFamily(name: "dare_linear", reference: "Yu et al. 2023, Language models are Super Mario (DARE), arXiv:2311.03099",
                             summary: "random drop with L1 rescale, then task arithmetic", consensus: .none, sparsification: .random,
                             normalize: false, rescale: true),
        TaskArithmeticFamily(name: "dare_ties", reference: "Yu et al. 2023 (DARE) with Yadav et al. 2023 (TIES), arXiv:2311.03099",
                             summary: "random drop with L1 rescale, then TIES sign election", consensus: .signSum, sparsification: .random,
                             normalize: false, rescale: true),
        TaskArithmeticFamily(name: "breadcrumbs", reference: "Davari & Belilovsky 2023, Model Breadcrumbs, arXiv:2312.06795",
                             summary: "drop the largest (gamma) and smallest magnitudes, then task arithmetic", consensus: .none,
                             sparsification: .magnitudeOutliers, normalize: false, rescale: false),
        TaskArithmeticFamily(name: "breadcrumbs_ties", reference: "Davari & Belilovsky 2023 (Breadcrumbs) with TIES sign election",
                             summary: "breadcrumbs pruning, then TIES sign election", consensus: .signSum,
                             sparsification: .magnitudeOutliers, normalize: false, rescale: false),
        TaskArithmeticFamily(name: "della", reference: "Deep et al. 2024, DELLA-Merging, arXiv:2406.11617",
                             summary: "magnitude-ranked random drop per row with L1 rescale, then TIES sign election", consensus: .signSum,
                             sparsification: .della, normalize: true, rescale: true),
        TaskArithmeticFamily(name: "della_linear", reference: "Deep et al. 2024, DELLA-Merging, arXiv:2406.11617",
                             summary: "magnitude-ranked random drop per row with L1 rescale, then task arithmetic", consensus: .none,
                             sparsification: .della, normalize: false, rescale: true),
        TaskArithmeticFamily(name: "localize_stitch", reference: "He et al. 2024, Localize-and-Stitch, arXiv:2408.13656 (dataless variant, §3.3)",
                             summary: "keep each task vector's top-density magnitudes (per tensor), average where the masks overlap",
                             consensus: .nonzero, sparsification: .magnitude, normalize: true, rescale: false, density: 0.05, weight: 1),
        SlerpMerge(),
        NuSlerpMerge(),
        MultiSlerpMerge(),
        KarcherMerge(),
        ModelStockMerge(),
        PassthroughMerge(),
        TSVMerge(),
        IsotropicMerge(.common),
        IsotropicMerge(.commonAndTaskSpecific),
        SCEMerge(),
        RAMMerge(plus: false),
        RAMMerge(plus: true),
        NearSwapMerge(),
        ArceeFusionMerge(),
    ]

    public static var names: [String] { all.map(\.name) }

    public static func method(named name: String) throws -> any MergeMethod {
        guard let m = all.first(where: { $0.name == name }) else {
            throw MergeError.unknownMethod(name: name, known: names)
        }
        return m
    }
}
