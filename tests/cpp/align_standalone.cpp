// Uses the alignment / OAMLM core the way the LAMMPS pair style will: plain C++17, no Python,
// per-centre neighbour lists (element + position relative to the centre). Reads a structure and
// a small model from stdin, prints per-atom scheme, g of the self-alignment and the predicted
// direction; test_align_core_standalone.py compares them with the Python bindings.
#include <clusterforce/oamlm.hpp>

#include <cstdio>
#include <iostream>
#include <vector>

using namespace clusterforce;

static std::vector<Environment> environments(int chem, const std::vector<int>& z,
                                             const std::vector<double>& x) {
    const std::size_t n = z.size();
    std::vector<Environment> out;
    for (std::size_t i = 0; i < n; ++i) {
        std::vector<int> nz;
        std::vector<double> rel;
        for (std::size_t j = 0; j < n; ++j) {
            if (j == i) continue;
            nz.push_back(z[j]);
            for (int c = 0; c < 3; ++c) rel.push_back(x[3 * j + c] - x[3 * i + c]);
        }
        out.push_back(build_environment(static_cast<Chemistry>(chem), z[i], nz.size(), nz.data(), rel.data()));
    }
    return out;
}

int main() {
    int chem = 0;
    std::size_t n = 0;
    std::cin >> chem >> n;
    std::vector<int> z(n);
    std::vector<double> x(3 * n), y(3 * n);
    for (std::size_t i = 0; i < n; ++i) std::cin >> z[i] >> x[3 * i] >> x[3 * i + 1] >> x[3 * i + 2];
    for (std::size_t i = 0; i < n; ++i) std::cin >> y[3 * i] >> y[3 * i + 1] >> y[3 * i + 2];
    std::vector<double> B(n * n), T(3 * n), d(n * n);
    for (auto& b : B) std::cin >> b;
    for (auto& t : T) std::cin >> t;
    for (auto& v : d) std::cin >> v;
    if (!std::cin) {
        std::fprintf(stderr, "bad input\n");
        return 2;
    }
    try {
        const std::vector<Environment> refs = environments(chem, z, x);
        const std::vector<Environment> inputs = environments(chem, z, y);
        const ReferenceSet set(refs.data(), refs.size());
        const OamlmModel model{&set, B.data(), nullptr, T.data(), 0.5, AlignOptions{}};
        std::vector<OamlmResult> res(n);
        oamlm_predict(model, inputs.data(), n, d.data(), res.data());
        for (std::size_t i = 0; i < n; ++i) {
            const Alignment al = align_environments(inputs[i], set, i, AlignOptions{});
            std::printf("%d %.17g %.17g %.17g %.17g\n", inputs[i].scheme, al.g, res[i].v[0], res[i].v[1], res[i].v[2]);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
